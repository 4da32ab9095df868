import { createRoute, z } from '@hono/zod-openapi';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { errorResponses, HostPatchBody, HostSchema, IdParam, json, jsonBody, JoinTokenBody, JoinTokenSchema } from '../schemas.ts';
import { router, security } from './common.ts';

const JOIN_TTL_DEFAULT = 3600;

export function hostRoutes(d: Deps) {
  const viewer = requireAuth({ tokens: d.tokens, events: d.events, role: 'viewer' });
  const operator = requireAuth({ tokens: d.tokens, events: d.events, role: 'operator' });
  const admin = requireAuth({ tokens: d.tokens, events: d.events, role: 'admin' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'post', path: '/hosts/join-tokens', tags: ['hosts'], security, middleware: [admin] as const,
      summary: 'Create a join token an agent trades for a host identity',
      request: { body: { required: false, content: { 'application/json': { schema: JoinTokenBody } } } },
      responses: { 201: json(JoinTokenSchema, 'Join token'), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const body = c.req.valid('json') ?? {};
      const singleUse = body.singleUse === true;
      const t = await d.tokens.issue({ kind: 'join', ttlSeconds: body.ttlSeconds ?? JOIN_TTL_DEFAULT, ...(body.labels ? { labels: body.labels } : {}), singleUse });
      await d.events.record({ kind: 'audit', actor: actorOf(c.var.principal), action: 'join-token.create', target: t.id, outcome: 'ok', data: { singleUse } });
      return c.json({ token: t.token, expiresAt: t.expiresAt.toISOString(), singleUse }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/hosts', tags: ['hosts'], security, middleware: [viewer] as const, summary: 'List hosts',
      responses: { 200: json(z.array(HostSchema), 'Hosts'), ...errorResponses(401, 403) },
    }),
    async (c) => c.json((await d.services.hosts.list()) as z.infer<typeof HostSchema>[], 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/hosts/{id}', tags: ['hosts'], security, middleware: [viewer] as const, summary: 'Get a host',
      request: { params: IdParam },
      responses: { 200: json(HostSchema, 'Host'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json((await d.services.hosts.get(c.req.valid('param').id)) as z.infer<typeof HostSchema>, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/hosts/{id}', tags: ['hosts'], security, middleware: [operator] as const, summary: 'Change labels or schedulability',
      request: { params: IdParam, body: jsonBody(HostPatchBody) },
      responses: { 200: json(HostSchema, 'Host'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const h = await d.services.hosts.patch(c.req.valid('param').id, c.req.valid('json'), actorOf(c.var.principal));
      return c.json(h as z.infer<typeof HostSchema>, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/hosts/{id}', tags: ['hosts'], security, middleware: [operator] as const,
      summary: 'Remove a host: its credentials stop working at once and its replicas are placed elsewhere',
      request: { params: IdParam },
      responses: { 204: { description: 'Removed' }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      await d.services.hosts.remove(c.req.valid('param').id, actorOf(c.var.principal));
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/hosts/{id}/drain', tags: ['hosts'], security, middleware: [operator] as const,
      summary: 'Stop placing on the host and move its replicas elsewhere',
      request: { params: IdParam },
      responses: { 200: json(HostSchema, 'Host'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json((await d.services.hosts.drain(c.req.valid('param').id, actorOf(c.var.principal))) as z.infer<typeof HostSchema>, 200),
  );

  return app;
}
