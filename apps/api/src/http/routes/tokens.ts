import { createRoute } from '@hono/zod-openapi';
import { notFound } from '../../errors.ts';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { errorResponses, IdParam, IssuedTokenSchema, json, jsonBody, TokenBody } from '../schemas.ts';
import { router, security } from './common.ts';

const TTL_DEFAULT = 30 * 86_400;

export function tokenRoutes(d: Deps) {
  const admin = requireAuth({ tokens: d.tokens, events: d.events, role: 'admin' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'post', path: '/tokens', tags: ['tokens'], security, middleware: [admin] as const, summary: 'Issue an API token with a role',
      request: { body: jsonBody(TokenBody) },
      responses: { 201: json(IssuedTokenSchema, 'The token (shown once)'), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const t = await d.tokens.issue({ kind: 'user', role: b.role, ttlSeconds: b.ttlSeconds ?? TTL_DEFAULT, ...(b.name ? { name: b.name } : {}) });
      await d.events.record({ kind: 'audit', actor: actorOf(c.var.principal), action: 'token.create', target: t.id, outcome: 'ok', data: { role: b.role } });
      return c.json({ id: t.id, token: t.token, expiresAt: t.expiresAt.toISOString() }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/tokens/{id}', tags: ['tokens'], security, middleware: [admin] as const, summary: 'Revoke a token',
      request: { params: IdParam },
      responses: { 204: { description: 'Revoked' }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await d.tokens.revoke(id))) throw notFound('token');
      await d.events.record({ kind: 'audit', actor: actorOf(c.var.principal), action: 'token.revoke', target: id, outcome: 'ok' });
      return c.body(null, 204);
    },
  );

  return app;
}
