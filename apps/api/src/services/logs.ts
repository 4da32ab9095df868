import { eq } from 'drizzle-orm';
import { instances, type Db } from '../../../../db/src/index.ts';
import type { Principal } from '../auth/tokens.ts';
import { MacheteError, notFound } from '../errors.ts';
import type { InvocationService, InvocationView } from './invocations.ts';
import { StaticFeed, type LogEvent, type LogFeed, type LogOpenRequest } from './logFeed.ts';

/** How the service reaches agents (the hub). */
export interface LogTransport {
  openLogs(hostId: string, req: LogOpenRequest): Promise<LogFeed>;
}

export interface LogOptions {
  follow: boolean;
  tail?: number | undefined;
  since?: number | undefined;
}

/** Stored output is replayed in pieces of this many characters (one SSE event each). */
const STORED_PIECE = 64 * 1024;
/** An invocation the agent no longer runs has its result stored within moments. */
const RESULT_WAIT_MS = 5_000;

function storedFeed(inv: InvocationView): LogFeed {
  const events: LogEvent[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    const text = inv[stream];
    for (let at = 0; at < text.length; at += STORED_PIECE) events.push({ kind: 'data', stream, data: text.slice(at, at + STORED_PIECE) });
  }
  events.push({ kind: 'end', reason: `invocation ${inv.status}${inv.truncated ? '; output truncated at the cap' : ''}` });
  return new StaticFeed(events);
}

/**
 * Log streams. Replicas: the agent on the instance's host reads its current container's
 * json-file log. Invocations: while running, the agent's capped capture buffers, live; once
 * finished, the stdout and stderr stored with the result (stdout first: their interleaving is
 * not recorded), since the container is gone by then.
 */
export function createLogService(db: Db, invocations: InvocationService, transport: () => LogTransport) {
  return {
    async instance(id: string, o: LogOptions): Promise<LogFeed> {
      const [row] = await db.select({ hostId: instances.hostId, containerId: instances.containerId, desired: instances.desired }).from(instances).where(eq(instances.id, id));
      if (!row || row.desired === 'removed') throw notFound('instance');
      if (!row.hostId) throw new MacheteError('conflict', 'the instance is not placed on a host yet');
      return transport().openLogs(row.hostId, { target: 'instance', id, containerId: row.containerId, follow: o.follow, tail: o.tail ?? null, since: o.since ?? null });
    },

    async invocation(id: string, o: LogOptions, who: Principal): Promise<LogFeed> {
      let inv = await invocations.get(id, who);
      if (inv.status === 'running' && inv.hostId) {
        try {
          return await transport().openLogs(inv.hostId, { target: 'invocation', id, containerId: null, follow: o.follow, tail: null, since: null });
        } catch (err) {
          // It finished between our read and the agent's lookup: serve the stored result.
          if (!(err instanceof MacheteError && err.code === 'not_found')) throw err;
          const timeout = new Promise<null>((r) => setTimeout(() => r(null), RESULT_WAIT_MS).unref());
          const done = await Promise.race([invocations.wait(id, who), timeout]);
          if (!done) throw new MacheteError('unavailable', 'the invocation ended on its host but its result has not arrived yet');
          inv = done;
        }
      }
      if (inv.status === 'running') throw new MacheteError('unavailable', 'the invocation has no host to read its output from');
      return storedFeed(inv);
    },
  };
}
export type LogService = ReturnType<typeof createLogService>;
