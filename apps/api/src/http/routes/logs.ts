import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { LogFeed } from '../../services/logFeed.ts';
import type { Deps } from '../deps.ts';
import { requireAuth } from '../middleware/auth.ts';
import { errorResponses, IdParam } from '../schemas.ts';
import { router, security } from './common.ts';

/** A comment-free keepalive event this often while nothing else is sent (proxies drop silent streams). */
const PING_MS = 15_000;

const LogQuery = z.object({
  follow: z.enum(['true', 'false']).optional().openapi({ description: 'keep streaming until the container ends' }),
  tail: z.coerce.number().int().min(0).max(100_000).optional().openapi({ description: 'last N lines only (instances)' }),
  since: z.coerce.number().int().min(0).optional().openapi({ description: 'unix seconds: output after it only (instances)' }),
});

const SSE_DOC = [
  'Server-sent events: `stdout` / `stderr` with data `{"stream","data","dropped"?}` (`data` is UTF-8 text, not split by line;',
  '`dropped` counts bytes lost just before it), then `end` `{"reason"}` when the output is over, or `error` `{"error":{"code","message"}}`',
  'when it broke off (host disconnected); `ping` `{}` while idle. A client that reads slowly slows the container log read down',
  'through the agent (credit window) rather than being buffered for.',
].join(' ');

const sseResponse = { description: SSE_DOC, content: { 'text/event-stream': { schema: z.string() } } };

/** Writes a feed as SSE until it ends or the client goes; the feed is closed either way (which cancels the agent's read). */
function relay(c: Context, feed: LogFeed): Response {
  return streamSSE(c, async (stream) => {
    const stop = () => feed.close();
    // Both: streamSSE learns of a disconnect when node-server cancels the body; the request signal also aborts.
    stream.onAbort(stop);
    c.req.raw.signal.addEventListener('abort', stop, { once: true });
    try {
      while (!stream.aborted) {
        const e = await feed.next(PING_MS);
        if (e === null || stream.aborted) break;
        if (e === 'idle') {
          await stream.writeSSE({ event: 'ping', data: '{}' });
          continue;
        }
        if (e.kind === 'data') {
          await stream.writeSSE({ event: e.stream, data: JSON.stringify({ stream: e.stream, data: e.data, ...(e.dropped ? { dropped: e.dropped } : {}) }) });
          // Resolved once the response stream took it (node-server waits for 'drain'): only then more credit.
          feed.consumed(e);
          continue;
        }
        if (e.kind === 'end') await stream.writeSSE({ event: 'end', data: JSON.stringify({ reason: e.reason }) });
        else await stream.writeSSE({ event: 'error', data: JSON.stringify({ error: { code: e.code, message: e.message } }) });
        break;
      }
    } finally {
      c.req.raw.signal.removeEventListener('abort', stop);
      feed.close();
    }
  });
}

export function logRoutes(d: Deps) {
  const viewer = requireAuth({ tokens: d.tokens, events: d.events, role: 'viewer' });
  const logs = d.services.logs;
  const app = router();

  app.openapi(
    createRoute({
      method: 'get', path: '/instances/{id}/logs', tags: ['instances'], security, middleware: [viewer] as const,
      summary: "A replica's container output (json-file log) through its host's agent; `follow=true` streams until the container ends",
      request: { params: IdParam, query: LogQuery },
      responses: { 200: sseResponse, ...errorResponses(400, 401, 403, 404, 409, 429, 503) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const feed = await logs.instance(c.req.valid('param').id, { follow: q.follow === 'true', tail: q.tail, since: q.since });
      return relay(c, feed) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/invocations/{id}/logs', tags: ['invocations'], security, middleware: [viewer] as const,
      summary: "An invocation's output: live from its host while it runs (`follow=true` until it ends), then the stored stdout and stderr",
      request: { params: IdParam, query: LogQuery },
      responses: { 200: sseResponse, ...errorResponses(400, 401, 403, 404, 429, 503) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const feed = await logs.invocation(c.req.valid('param').id, { follow: q.follow === 'true' }, c.var.principal);
      return relay(c, feed) as never;
    },
  );
  return app;
}
