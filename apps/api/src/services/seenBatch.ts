import { sql } from 'drizzle-orm';
import { hosts, rowsOf, type Db } from '../../../../db/src/index.ts';

/** Window in which "host seen" writes are gathered into one statement. */
const WINDOW_MS = 10;
const MAX_BATCH = 5_000;

interface Pending {
  revision: number | null;
  waiters: Array<{ resolve: (found: boolean) => void; reject: (err: unknown) => void }>;
}

/**
 * Gathers "this host was seen (and applied revision R)" writes from every agent session into one
 * UPDATE per window. Each status frame of a fleet-wide change used to cost its own statement;
 * 10,000 of them queued in the pool ahead of everything else (an operator's next request waited
 * seconds behind them). Each caller still learns whether its host exists (false: it was removed).
 */
export function createSeenBatcher(db: Db): (hostId: string, appliedRevision?: number) => Promise<boolean> {
  let pending = new Map<string, Pending>();
  let timer: NodeJS.Timeout | null = null;

  const flush = async () => {
    timer = null;
    const batch = pending;
    pending = new Map();
    const rows = [...batch].map(([id, p]) => ({ id, rev: p.revision }));
    try {
      const found = await db.execute(sql`
        update ${hosts} set last_seen_at = now(), applied_revision = coalesce(v.rev, ${hosts.appliedRevision})
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id text, rev bigint)
        where ${hosts.id} = v.id
        returning ${hosts.id} as id`);
      const ids = new Set(rowsOf<{ id: string }>(found).map((r) => r.id));
      for (const [id, p] of batch) p.waiters.forEach((w) => w.resolve(ids.has(id)));
    } catch (err) {
      for (const p of batch.values()) p.waiters.forEach((w) => w.reject(err));
    }
  };

  return (hostId, appliedRevision) =>
    new Promise<boolean>((resolve, reject) => {
      const p = pending.get(hostId) ?? { revision: null, waiters: [] };
      // Frames of one host arrive in order; the newest revision in the window is the one applied.
      if (appliedRevision !== undefined) p.revision = Math.max(p.revision ?? appliedRevision, appliedRevision);
      p.waiters.push({ resolve, reject });
      pending.set(hostId, p);
      if (pending.size >= MAX_BATCH) {
        if (timer) clearTimeout(timer);
        void flush();
      } else timer ??= setTimeout(() => void flush(), WINDOW_MS);
    });
}
