import { createRoute, z } from '@hono/zod-openapi';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { errorResponses, IdParam, InvocationSchema, InvokeBody, json, ToolNameParam } from '../schemas.ts';
import { router, security } from './common.ts';

type Invocation = z.infer<typeof InvocationSchema>;

export function invocationRoutes(d: Deps) {
  const invoker = requireAuth({ tokens: d.tokens, events: d.events, role: 'invoker' });
  const svc = d.services.invocations;
  const app = router();

  app.openapi(
    createRoute({
      method: 'post', path: '/tools/{name}/invoke', tags: ['invocations'], security, middleware: [invoker] as const,
      summary: 'Run the tool once; waits for the result unless `wait` is false',
      request: { params: ToolNameParam, body: { required: false, content: { 'application/json': { schema: InvokeBody } } } },
      responses: {
        200: json(InvocationSchema, 'Finished: exit code and output'),
        202: json(z.object({ id: z.string() }), 'Started; poll GET /api/v1/invocations/{id}'),
        ...errorResponses(400, 401, 403, 404, 429, 503),
      },
    }),
    async (c) => {
      const body = c.req.valid('json') ?? {};
      const who = c.var.principal;
      const id = await svc.start(c.req.valid('param').name, body, who);
      void d.events.record({ kind: 'audit', actor: actorOf(who), action: 'invocation.start', target: id, outcome: 'ok' }).catch(() => {});
      if (body.wait === false) return c.json({ id }, 202);
      return c.json((await svc.wait(id, who)) as Invocation, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/invocations/{id}', tags: ['invocations'], security, middleware: [invoker] as const,
      summary: 'An invocation and, once finished, its result',
      request: { params: IdParam },
      responses: { 200: json(InvocationSchema, 'The invocation'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json((await svc.get(c.req.valid('param').id, c.var.principal)) as Invocation, 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/invocations/{id}', tags: ['invocations'], security, middleware: [invoker] as const,
      summary: 'Cancel: the container is killed and the status becomes cancelled',
      request: { params: IdParam },
      responses: { 200: json(InvocationSchema, 'The invocation after cancelling'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json((await svc.cancel(c.req.valid('param').id, c.var.principal)) as Invocation, 200),
  );
  return app;
}
