import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { EventRow } from '../../services/events.ts';
import type { Deps } from '../deps.ts';
import { requireAuth } from '../middleware/auth.ts';
import { errorResponses, EventSchema } from '../schemas.ts';
import { router, security } from './common.ts';

const toJson = (e: EventRow) => ({ ...e, at: e.at.toISOString() });

export function eventRoutes(d: Deps) {
  const viewer = requireAuth({ tokens: d.tokens, events: d.events, role: 'viewer' });
  const app = router();
  app.openapi(
    createRoute({
      method: 'get', path: '/events', tags: ['events'], security, middleware: [viewer] as const,
      summary: 'Audit and lifecycle events, newest last; `follow=true` streams them as server-sent events',
      request: {
        query: z.object({
          follow: z.enum(['true', 'false']).optional(),
          after: z.coerce.number().int().min(0).optional(),
          limit: z.coerce.number().int().min(1).max(1000).optional(),
        }),
      },
      responses: {
        200: { description: 'Events (JSON array, or text/event-stream when following)', content: { 'application/json': { schema: z.array(EventSchema) }, 'text/event-stream': { schema: z.string() } } },
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const backlog = await d.events.list({ ...(q.after !== undefined ? { afterId: q.after } : {}), limit: q.limit ?? 100 });
      if (q.follow !== 'true') return c.json(backlog.map(toJson), 200);
      return streamSSE(c, async (stream) => {
        let last = 0;
        const pending: EventRow[] = [];
        let wake: (() => void) | null = null;
        // Subscribe before writing the backlog so nothing committed meanwhile is missed.
        const off = d.events.follow((e) => {
          pending.push(e);
          wake?.();
        });
        stream.onAbort(() => {
          off();
          wake?.();
        });
        try {
          for (const e of backlog) {
            await stream.writeSSE({ id: String(e.id), event: e.kind, data: JSON.stringify(toJson(e)) });
            last = e.id;
          }
          while (!stream.aborted) {
            const e = pending.shift();
            if (!e) {
              await new Promise<void>((r) => {
                wake = r;
                setTimeout(r, 15_000);
              });
              wake = null;
              if (!pending.length && !stream.aborted) await stream.writeSSE({ event: 'ping', data: '{}' });
              continue;
            }
            if (e.id <= last) continue;
            last = e.id;
            await stream.writeSSE({ id: String(e.id), event: e.kind, data: JSON.stringify(toJson(e)) });
          }
        } finally {
          off();
        }
      }) as never;
    },
  );
  return app;
}
