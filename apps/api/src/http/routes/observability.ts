import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { requestId } from 'hono/request-id';
import { matchedRoutes } from 'hono/route';
import { roleAllows } from '../../auth/tokens.ts';
import { MacheteError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/metrics.ts';
import { createReadiness } from '../../services/readiness.ts';
import type { Deps } from '../deps.ts';
import { bearer } from '../middleware/auth.ts';

/** The route pattern that answered (`/api/v1/tools/:name`), never the raw path; `unmatched` for a 404 no route took. */
function routeOf(c: Context): string {
  const r = matchedRoutes(c)[c.req.routeIndex];
  // A 404 that only passed through middleware matched no route of its own.
  return !r || (c.res.status === 404 && r.method === 'ALL') ? 'unmatched' : r.path;
}

/**
 * Times every request and labels it with the route pattern that answered it,
 * never the raw path: ids in URLs would make one series per id.
 */
export function httpMetrics(m: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const t0 = performance.now();
    await next();
    m.observeHttp(c.req.method, routeOf(c), c.res.status, (performance.now() - t0) / 1000);
  };
}

/** Routes polled by machines all day: logged at debug, so the info log is about what people and agents did. */
const QUIET = new Set(['/metrics', '/api/health', '/api/ready']);
const requestIds = requestId({ limitLength: 64 });

/**
 * Gives every request an id (a client's `X-Request-Id` of up to 64 word characters, else a new
 * UUID), answers it in `X-Request-Id`, and writes one JSON line per request: id, method, route
 * pattern, status, duration. Never the raw path, the query or a header: no id, token or secret
 * that a client put in a URL or header reaches the log.
 */
export function requestLog(log: Logger): MiddlewareHandler {
  return (c, next) =>
    requestIds(c, async () => {
      const t0 = performance.now();
      await next();
      const route = routeOf(c);
      const status = c.res.status;
      const line = { reqId: c.get('requestId'), method: c.req.method, route, status, ms: Math.round((performance.now() - t0) * 10) / 10 };
      if (status >= 500) log.error(line, 'request failed');
      else if (QUIET.has(route)) log.debug(line, 'request');
      else log.info(line, 'request');
    });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** `/metrics` (Prometheus text) and `/api/ready` (database and migrations). */
export function observabilityRoutes(d: Deps): Hono {
  const app = new Hono();
  const access = d.metricsAccess ?? { token: null, open: true };
  const scrapeToken = access.token ? digest(access.token) : null;

  app.get('/metrics', async (c) => {
    if (scrapeToken || !access.open) {
      const raw = bearer(c.req.header('authorization'));
      if (!raw) throw new MacheteError('unauthenticated', 'missing bearer token');
      // The scrape token, compared in constant time; otherwise an admin user token.
      if (!scrapeToken || !timingSafeEqual(digest(raw), scrapeToken)) {
        const p = await d.tokens.verify(raw, 'user');
        if (!roleAllows(p.role!, 'admin')) throw new MacheteError('forbidden', 'metrics need the scrape token or an admin token');
      }
    }
    const body = await d.metrics.registry.metrics();
    return c.body(body, 200, { 'content-type': d.metrics.registry.contentType, 'cache-control': 'no-store' });
  });

  const readiness = createReadiness(d.db);
  app.get('/api/ready', async (c) => {
    const r = await readiness.check();
    if (r.ready) return c.json({ status: 'ready' }, 200);
    return c.json({ status: 'not_ready', reason: r.reason }, 503);
  });
  return app;
}
