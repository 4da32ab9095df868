import { createRoute } from '@hono/zod-openapi';
import { MacheteError } from '../../errors.ts';
import type { Deps } from '../deps.ts';
import { requireAuth } from '../middleware/auth.ts';
import { EnrollBody, EnrollSchema, errorResponses, json, jsonBody } from '../schemas.ts';
import { router } from './common.ts';

export function agentRoutes(d: Deps) {
  const join = requireAuth({ tokens: d.tokens, events: d.events, kind: 'join' });
  const agent = requireAuth({ tokens: d.tokens, events: d.events, kind: 'agent' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'post', path: '/agent/enroll', tags: ['agents'], security: [{ join: [] }], middleware: [join] as const,
      summary: 'Trade a join token for a host identity and an agent credential bound to it',
      request: { body: jsonBody(EnrollBody) },
      responses: { 201: json(EnrollSchema, 'Enrolled'), ...errorResponses(400, 401) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const p = c.var.principal;
      // A single-use token is spent before the host exists: of two agents racing with it, one enrolls.
      if (p.singleUse && !(await d.tokens.consume(p.tokenId))) throw new MacheteError('unauthenticated', 'missing, invalid, expired or revoked token');
      const labels = { ...(p.labels ?? {}), ...(b.labels ?? {}) };
      const r = await d.services.hosts.enroll(b.hostName, labels);
      return c.json({ hostId: r.hostId, token: r.token, expiresAt: r.expiresAt.toISOString() }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/agent/renew', tags: ['agents'], security: [{ agent: [] }], middleware: [agent] as const,
      summary: 'Trade a valid agent credential for a fresh one (new jti) bound to the same host',
      description: 'Agents call it at about two thirds of the lifetime. The presented token stays valid until it expires; older ones are revoked. A removed host gets 401.',
      responses: { 200: json(EnrollSchema, 'New credential'), ...errorResponses(401) },
    }),
    async (c) => {
      const p = c.var.principal;
      const r = await d.services.hosts.renew(p.hostId!, p.tokenId);
      return c.json({ hostId: r.hostId, token: r.token, expiresAt: r.expiresAt.toISOString() }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/agent/connect', tags: ['agents'], security: [{ agent: [] }],
      summary: 'WebSocket upgrade for agents (agent token; no browser Origin)',
      responses: { 101: { description: 'Switching protocols' }, 426: { description: 'Upgrade required' }, ...errorResponses(401, 403) },
    }),
    () => {
      // Real upgrades are taken by the HTTP server before Hono sees them (hub/upgrade.ts).
      throw new MacheteError('invalid_argument', 'this endpoint only accepts WebSocket upgrades');
    },
  );
  return app;
}
