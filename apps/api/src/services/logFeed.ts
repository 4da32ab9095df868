import type { LogsRequest } from '../../../../protocol/src/index.ts';
import type { ErrorCode } from '../errors.ts';

/** What to stream, as the agent is asked for it (the relay adds stream id and window). */
export type LogOpenRequest = Omit<LogsRequest, 'type' | 'streamId' | 'window'>;

export type LogEvent =
  | { kind: 'data'; stream: 'stdout' | 'stderr'; data: string; dropped?: number }
  | { kind: 'end'; reason: string }
  | { kind: 'error'; code: ErrorCode; message: string };

/** What an HTTP log stream reads: one event at a time, acknowledging what its client has taken. */
export interface LogFeed {
  /** The next event; 'idle' when none came within `idleMs`; null once the feed is closed or over. */
  next(idleMs: number): Promise<LogEvent | 'idle' | null>;
  /** The client has taken this event: the producer may send that much more. */
  consumed(e: LogEvent): void;
  /** The client is gone (or the stream is over): stop the producer. Idempotent. */
  close(): void;
}

/** UTF-8 bytes of an event's data, the unit of the credit window on both sides. */
export const dataBytes = (e: LogEvent): number => (e.kind === 'data' ? Buffer.byteLength(e.data) : 0);

/**
 * A bounded queue between a producer (the agent's frames) and the one HTTP writer. The producer
 * must respect a window; `overflow` fires when it does not, and nothing past the bound is held.
 */
export class QueueFeed implements LogFeed {
  private readonly queue: LogEvent[] = [];
  private queuedBytes = 0;
  private over = false;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly maxQueuedBytes: number,
    private readonly hooks: { onConsumed(bytes: number): void; onClose(): void; onOverflow(): void },
  ) {}

  /** Producer side. Ignored after the end or close. */
  push(e: LogEvent): void {
    if (this.over || this.closed) return;
    const bytes = dataBytes(e);
    if (this.queuedBytes + bytes > this.maxQueuedBytes) {
      this.over = true;
      this.queue.push({ kind: 'error', code: 'internal', message: 'the host sent more log data than it was allowed' });
      this.hooks.onOverflow();
    } else {
      this.queuedBytes += bytes;
      this.queue.push(e);
      if (e.kind !== 'data') this.over = true;
    }
    this.wake?.();
  }

  get ended(): boolean {
    return this.over;
  }

  async next(idleMs: number): Promise<LogEvent | 'idle' | null> {
    for (;;) {
      if (this.closed) return null;
      const e = this.queue.shift();
      if (e) {
        this.queuedBytes -= dataBytes(e);
        return e;
      }
      if (this.over) return null;
      const timedOut = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), idleMs);
        this.wake = () => {
          clearTimeout(t);
          resolve(false);
        };
      });
      this.wake = null;
      if (timedOut && !this.closed && !this.queue.length) return 'idle';
    }
  }

  consumed(e: LogEvent): void {
    const bytes = dataBytes(e);
    if (bytes > 0 && !this.closed) this.hooks.onConsumed(bytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.wake?.();
    this.hooks.onClose();
  }
}

/** A feed of events known up front (an invocation's stored output). */
export class StaticFeed implements LogFeed {
  private closed = false;
  constructor(private readonly events: LogEvent[]) {}
  async next(): Promise<LogEvent | null> {
    return this.closed ? null : (this.events.shift() ?? null);
  }
  consumed(): void {}
  close(): void {
    this.closed = true;
  }
}
