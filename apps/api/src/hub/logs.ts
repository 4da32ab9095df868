import { randomBytes } from 'node:crypto';
import { LOG_CHUNK_BYTES, LOG_WINDOW_BYTES, type LogChunk, type LogEnd, type ServerFrame } from '../../../../protocol/src/index.ts';
import { MacheteError, type ErrorCode } from '../errors.ts';
import { QueueFeed, type LogEvent, type LogFeed, type LogOpenRequest } from '../services/logFeed.ts';

/** Log streams open at once per host (the agent has the same cap). */
export const MAX_LOG_STREAMS_PER_HOST = 32;
/** How long an agent gets to acknowledge a new stream (or refuse it). */
const ACK_TIMEOUT_MS = 10_000;
/** What an agent may send past its credit: its last chunk can overdraw (U+FFFD can triple a chunk's bytes). */
const OVERDRAW_BYTES = 4 * LOG_CHUNK_BYTES;

export type { LogOpenRequest };

const CODES: Record<NonNullable<LogEnd['code']>, ErrorCode> = { not_found: 'not_found', busy: 'rate_limited', unavailable: 'unavailable' };

interface Open {
  hostId: string;
  feed: QueueFeed;
  /** Resolves the open() waiting for the agent's first frame. */
  ack: ((first: LogEvent) => void) | null;
}

/**
 * The control plane's end of log streams: one bounded feed per stream, keyed by a random id only
 * the server issues. Frames for ids not open on the sending host are ignored (returns false), so
 * an agent can answer nothing but the streams opened on it. Credit goes back to the agent as the
 * HTTP writer takes data, a quarter window at a time.
 */
export class LogRelay {
  private readonly streams = new Map<string, Open>();

  constructor(
    private readonly send: (hostId: string, frame: ServerFrame) => boolean,
    private readonly window = LOG_WINDOW_BYTES,
  ) {}

  /** Streams open on a host. */
  count(hostId: string): number {
    let n = 0;
    for (const s of this.streams.values()) if (s.hostId === hostId) n++;
    return n;
  }

  /** Opens a stream on the host's agent; resolves once the agent has acknowledged it, throws its refusal. */
  async open(hostId: string, req: LogOpenRequest): Promise<LogFeed> {
    if (this.count(hostId) >= MAX_LOG_STREAMS_PER_HOST) throw new MacheteError('rate_limited', 'too many log streams on this host', { retryAfterSeconds: 5 });
    const streamId = `l${randomBytes(12).toString('hex')}`;
    let owed = 0;
    const cancel = () => this.streams.delete(streamId) && this.send(hostId, { type: 'logsCancel', streamId });
    const feed = new QueueFeed(this.window + OVERDRAW_BYTES, {
      onConsumed: (bytes) => {
        owed += bytes;
        if (owed < this.window / 4) return;
        this.send(hostId, { type: 'logCredit', streamId, bytes: owed });
        owed = 0;
      },
      // Closed by the HTTP side before the agent ended it: the client went away.
      onClose: cancel,
      onOverflow: cancel,
    });
    const entry: Open = { hostId, feed, ack: null };
    const first = new Promise<LogEvent | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), ACK_TIMEOUT_MS);
      entry.ack = (e) => {
        clearTimeout(timer);
        resolve(e);
      };
    });
    this.streams.set(streamId, entry);
    if (!this.send(hostId, { type: 'logs', streamId, window: this.window, ...req })) {
      this.streams.delete(streamId);
      throw new MacheteError('unavailable', 'the host is not connected to this control plane');
    }
    const e = await first;
    if (e?.kind === 'error') {
      feed.close();
      throw new MacheteError(e.code, e.message);
    }
    if (!e) {
      feed.close();
      throw new MacheteError('unavailable', 'the host did not answer the log request in time');
    }
    return feed;
  }

  /** A logChunk or logEnd from a host; false when the stream is not one open on that host. */
  onFrame(hostId: string, f: LogChunk | LogEnd): boolean {
    const s = this.streams.get(f.streamId);
    if (!s || s.hostId !== hostId) return false;
    const e: LogEvent =
      f.type === 'logChunk'
        ? { kind: 'data', stream: f.stream, data: f.data, ...(f.dropped ? { dropped: f.dropped } : {}) }
        : f.code
          ? { kind: 'error', code: CODES[f.code], message: f.reason }
          : { kind: 'end', reason: f.reason };
    if (f.type === 'logEnd') this.streams.delete(f.streamId);
    if (s.ack) {
      s.ack(e);
      s.ack = null;
    }
    // The empty chunk that acknowledges an open carries nothing for the client.
    if (e.kind !== 'data' || e.data || e.dropped) s.feed.push(e);
    return true;
  }

  /** The host's connection is gone: its streams end with an error. */
  hostGone(hostId: string, message = 'the host disconnected'): void {
    for (const [id, s] of this.streams) {
      if (s.hostId !== hostId) continue;
      this.streams.delete(id);
      const e: LogEvent = { kind: 'error', code: 'unavailable', message };
      s.ack?.(e);
      s.feed.push(e);
    }
  }

  closeAll(): void {
    for (const hostId of new Set([...this.streams.values()].map((s) => s.hostId))) this.hostGone(hostId, 'the server is shutting down');
  }
}
