import { createMiddleware } from 'hono/factory';
import { HTTPException } from 'hono/http-exception';
import { routePath } from 'hono/route';
import type { Principal } from '../../auth/tokens.ts';
import { MacheteError } from '../../errors.ts';
import type { EventLog } from '../../services/events.ts';
import { actorOf, type AuthEnv } from './auth.ts';
import { remoteAddress } from './limits.ts';

/** Statuses that mean "the request was refused": always audited (coalesced against floods). */
const REFUSALS = new Set([400, 401, 403, 413, 429]);
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The one place HTTP requests become audit events. It wraps everything under /api,
 * so it sees the final status of every request, including those refused by the
 * rate limit, the body limits, authentication and validation:
 * - every refusal (400, 401, 403, 413, 429) → an `outcome: refused` event through
 *   EventLog.refused (one per actor+action per second, repeats counted);
 * - every other failed mutating call → `outcome: error` (same bound);
 * - every successful mutating call that did not record its own event in the service
 *   (tool.put, token.create, …) → a generic `outcome: ok` event, so none is missed.
 * The actor is the verified token when there is one, else the peer address.
 */
export function auditTrail(opts: { events: EventLog }) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const recorded = await opts.events.tracking(async () => {
      await next();
    });
    const status = c.res.status;
    const mutating = MUTATING.has(c.req.method);
    if (!REFUSALS.has(status) && !(mutating && (status >= 300 || !recorded))) return;
    const principal = c.get('principal') as Principal | undefined;
    const actor = principal ? actorOf(principal) : `ip:${remoteAddress(c)}`;
    const action = `${c.req.method} ${routePath(c, -1) || c.req.path}`;
    const target = c.req.path.slice(0, 256);
    const err = c.error;
    const reason = err instanceof MacheteError || err instanceof HTTPException ? err.message : err ? 'internal error' : null;
    if (status < 300) {
      await opts.events.record({ kind: 'audit', actor, action, target, outcome: 'ok', data: { status } });
      return;
    }
    await opts.events.refused({ actor, action, target, outcome: REFUSALS.has(status) ? 'refused' : 'error', reason: reason ?? `HTTP ${status}`, data: { status } });
  });
}
