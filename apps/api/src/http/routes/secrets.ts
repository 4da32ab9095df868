import { createRoute, z } from '@hono/zod-openapi';
import { MAX_SECRET_VALUE_BYTES, SECRET_NAME_RE } from '../../../../../protocol/src/index.ts';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { errorResponses, json, jsonBody } from '../schemas.ts';
import { router, security } from './common.ts';

const SecretNameParam = z.object({
  name: z.string().max(63).regex(SECRET_NAME_RE, 'invalid secret name').openapi({ param: { name: 'name', in: 'path' }, example: 'api-key' }),
});
/** The value is checked in UTF-8 bytes by the service; the schema bounds characters. */
export const SecretBody = z.strictObject({ value: z.string().max(MAX_SECRET_VALUE_BYTES) }).openapi('SecretValue', { example: { value: 's3cr3t' } });
export const SecretSchema = z
  .object({ name: z.string(), version: z.number().int(), sizeBytes: z.number().int(), createdAt: z.string(), updatedAt: z.string() })
  .openapi('Secret', { description: 'Metadata only: a value is never returned.' });

/** PUT/GET/DELETE /secrets: operator only (reading even the names is an operator's business). */
export function secretRoutes(d: Deps) {
  const operator = requireAuth({ tokens: d.tokens, events: d.events, role: 'operator' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'put', path: '/secrets/{name}', tags: ['secrets'], security, middleware: [operator] as const,
      summary: 'Create or change a secret; a new value rolls the replicas of tools that name it',
      request: { params: SecretNameParam, body: jsonBody(SecretBody) },
      responses: { 201: json(SecretSchema, 'Created'), 200: json(SecretSchema, 'Unchanged or new version'), ...errorResponses(400, 401, 403, 413) },
    }),
    async (c) => {
      const r = await d.services.secrets.put(c.req.valid('param').name, c.req.valid('json').value, actorOf(c.var.principal));
      return c.json(r.secret, r.status === 'created' ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/secrets', tags: ['secrets'], security, middleware: [operator] as const, summary: 'List secrets (names and metadata, never values)',
      responses: { 200: json(z.array(SecretSchema), 'Secrets'), ...errorResponses(401, 403) },
    }),
    async (c) => c.json(await d.services.secrets.list(), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/secrets/{name}', tags: ['secrets'], security, middleware: [operator] as const,
      summary: 'Delete a secret (409 while a tool names it)',
      request: { params: SecretNameParam },
      responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      await d.services.secrets.remove(c.req.valid('param').name, actorOf(c.var.principal));
      return c.body(null, 204);
    },
  );

  return app;
}
