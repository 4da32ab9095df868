import { EventEmitter } from 'node:events';
import { and, asc, desc, gt } from 'drizzle-orm';
import { events, type Db } from '../../../../db/src/index.ts';

export interface EventInput {
  kind: 'audit' | 'lifecycle';
  actor: string;
  action: string;
  target?: string | null;
  outcome: 'ok' | 'refused' | 'error';
  reason?: string | null;
  data?: Record<string, unknown> | null;
}
export type EventRow = typeof events.$inferSelect;

/** Appends audit and lifecycle events and lets followers see them as they commit. */
export class EventLog {
  private readonly ee = new EventEmitter();
  constructor(private readonly db: Db) {
    this.ee.setMaxListeners(0);
  }

  /** Call after the change it describes has committed, so followers never see a change that rolled back. */
  async record(e: EventInput): Promise<EventRow> {
    const [row] = await this.db
      .insert(events)
      .values({ kind: e.kind, actor: e.actor, action: e.action, target: e.target ?? null, outcome: e.outcome, reason: e.reason ?? null, data: e.data ?? null })
      .returning();
    this.ee.emit('event', row);
    return row!;
  }

  /** Newest `limit` events after `afterId`, oldest first. */
  async list(opts: { afterId?: number; limit: number }): Promise<EventRow[]> {
    if (opts.afterId !== undefined) {
      return this.db.select().from(events).where(and(gt(events.id, opts.afterId))).orderBy(asc(events.id)).limit(opts.limit);
    }
    const rows = await this.db.select().from(events).orderBy(desc(events.id)).limit(opts.limit);
    return rows.reverse();
  }

  follow(fn: (e: EventRow) => void): () => void {
    this.ee.on('event', fn);
    return () => this.ee.off('event', fn);
  }
}
