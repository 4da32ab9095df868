import { createRoute, z } from '@hono/zod-openapi';
import { ToolNameSchema } from '../../../../../protocol/src/index.ts';
import type { Deps } from '../deps.ts';
import { requireAuth } from '../middleware/auth.ts';
import { errorResponses, InstanceSchema, json } from '../schemas.ts';
import { router, security } from './common.ts';

export function instanceRoutes(d: Deps) {
  const viewer = requireAuth({ tokens: d.tokens, events: d.events, role: 'viewer' });
  const app = router();
  app.openapi(
    createRoute({
      method: 'get', path: '/instances', tags: ['instances'], security, middleware: [viewer] as const,
      summary: 'Instances, optionally filtered by tool or host',
      request: { query: z.object({ tool: ToolNameSchema.optional(), host: z.string().max(64).regex(/^[A-Za-z0-9_-]+$/).optional() }) },
      responses: { 200: json(z.array(InstanceSchema), 'Instances'), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const rows = await d.services.instances.list({ ...(q.tool ? { tool: q.tool } : {}), ...(q.host ? { host: q.host } : {}) });
      return c.json(rows as z.infer<typeof InstanceSchema>[], 200);
    },
  );
  return app;
}
