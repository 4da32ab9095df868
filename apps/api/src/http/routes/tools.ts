import { createRoute, z } from '@hono/zod-openapi';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { DeploymentBody, DeploymentSchema, errorResponses, json, jsonBody, ToolNameParam, ToolSchema, ToolSpecBody } from '../schemas.ts';
import { router, security } from './common.ts';

export function toolRoutes(d: Deps) {
  const viewer = requireAuth({ tokens: d.tokens, events: d.events, role: 'viewer' });
  const operator = requireAuth({ tokens: d.tokens, events: d.events, role: 'operator' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'put', path: '/tools/{name}', tags: ['tools'], security, middleware: [operator] as const,
      summary: 'Create or update a tool; a changed spec becomes a new version',
      request: { params: ToolNameParam, body: jsonBody(ToolSpecBody) },
      responses: { 201: json(ToolSchema, 'Created'), 200: json(ToolSchema, 'Unchanged or new version'), ...errorResponses(400, 401, 403, 413) },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      const spec = c.req.valid('json');
      await d.services.specPolicy.check(spec);
      const r = await d.services.tools.put(name, spec, actorOf(c.var.principal));
      return c.json(r.tool, r.status === 'created' ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/tools', tags: ['tools'], security, middleware: [viewer] as const, summary: 'List tools',
      responses: { 200: json(z.array(ToolSchema), 'Tools'), ...errorResponses(401, 403) },
    }),
    async (c) => c.json(await d.services.tools.list(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/tools/{name}', tags: ['tools'], security, middleware: [viewer] as const, summary: 'Get a tool',
      request: { params: ToolNameParam },
      responses: { 200: json(ToolSchema, 'The tool at its current version'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json(await d.services.tools.get(c.req.valid('param').name), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/tools/{name}', tags: ['tools'], security, middleware: [operator] as const,
      summary: 'Delete a tool; its replicas are removed from every host',
      request: { params: ToolNameParam },
      responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      await d.services.tools.remove(c.req.valid('param').name, actorOf(c.var.principal));
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'put', path: '/tools/{name}/deployment', tags: ['deployments'], security, middleware: [operator] as const,
      summary: 'Set the number of replicas (and optionally pin a version)',
      request: { params: ToolNameParam, body: jsonBody(DeploymentBody) },
      responses: { 200: json(DeploymentSchema, 'The deployment'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const r = await d.services.deployments.put(c.req.valid('param').name, c.req.valid('json'), actorOf(c.var.principal));
      return c.json(r, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/tools/{name}/deployment', tags: ['deployments'], security, middleware: [viewer] as const,
      summary: 'Deployment status with its instances',
      request: { params: ToolNameParam },
      responses: { 200: json(DeploymentSchema, 'The deployment'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json(await d.services.deployments.get(c.req.valid('param').name), 200),
  );

  return app;
}
