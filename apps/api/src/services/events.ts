import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { and, asc, desc, gt } from 'drizzle-orm';
import { events, type Db } from '../../../../db/src/index.ts';
import { Coalescer, type CoalesceOptions } from './coalesce.ts';

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
/** A refusal or failure; `kind` is audit, `outcome` refused unless said. */
export type RefusalInput = Omit<EventInput, 'kind' | 'outcome'> & { outcome?: 'refused' | 'error' };
export interface EventLogOptions extends CoalesceOptions {
  /** Refusals of one actor and action are coalesced over this window. */
  windowMs: number;
}
export const DEFAULT_EVENT_LOG_OPTIONS: EventLogOptions = { windowMs: 1000, maxPerWindow: 20, maxKeys: 10_000 };

/** Appends audit and lifecycle events and lets followers see them as they commit. */
export class EventLog {
  private readonly ee = new EventEmitter();
  private readonly scope = new AsyncLocalStorage<{ recorded: boolean }>();
  private readonly refusals: Coalescer<EventInput>;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly db: Db,
    private readonly opts: EventLogOptions = DEFAULT_EVENT_LOG_OPTIONS,
  ) {
    this.ee.setMaxListeners(0);
    this.refusals = new Coalescer(opts);
  }

  /** Call after the change it describes has committed, so followers never see a change that rolled back. */
  async record(e: EventInput): Promise<EventRow> {
    const scope = this.scope.getStore();
    if (scope) scope.recorded = true;
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

  /**
   * Records a refusal, bounded against floods: the first per actor+action+outcome+reason
   * in a window is written at once, repeats are counted into a summary event (data.coalesced).
   */
  async refused(e: RefusalInput): Promise<void> {
    const input: EventInput = { ...e, kind: 'audit', outcome: e.outcome ?? 'refused' };
    this.timer ??= setInterval(() => void this.flush().catch(() => {}), this.opts.windowMs).unref();
    if (this.refusals.admit([input.actor, input.action, input.outcome, input.reason ?? ''].join('\u0000'), input)) await this.record(input);
  }

  /** Ends the current coalescing window: writes one summary per actor+action that had repeats. */
  async flush(): Promise<void> {
    const { summaries, overflow } = this.refusals.rollover();
    for (const { sample, count } of summaries) {
      await this.record({ ...sample, target: null, data: { ...sample.data, coalesced: count, windowMs: this.opts.windowMs } });
    }
    if (overflow > 0) {
      await this.record({ kind: 'audit', actor: 'many', action: 'refusals', outcome: 'refused', reason: 'refusals from too many sources in one window', data: { coalesced: overflow, windowMs: this.opts.windowMs } });
    }
  }

  /** Runs `fn` and tells whether it recorded any event (used to audit mutating calls exactly once). */
  async tracking(fn: () => Promise<void>): Promise<boolean> {
    const s = { recorded: false };
    await this.scope.run(s, fn);
    return s.recorded;
  }

  /** Writes pending summaries and stops the window timer (server shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  follow(fn: (e: EventRow) => void): () => void {
    this.ee.on('event', fn);
    return () => this.ee.off('event', fn);
  }
}
