import { LOG_CHUNK_BYTES, type AgentFrame, type LogEnd, type LogsRequest } from '../../../protocol/src/index.ts';
import type { DockerPort, LogHandle, ObservedContainer } from '../docker/port.ts';
import type { LiveOutput } from '../invoke/live.ts';
import { Outbox } from './outbox.ts';

/** Log streams served at once; past it a request is answered `busy` at once. */
export const MAX_LOG_STREAMS = 32;

export interface LogStreamerDeps {
  port: DockerPort;
  hostId: string;
  /** A running invocation's output (the invocation runner). */
  live(id: string): LiveOutput | undefined;
  /** Sends a frame on the current connection; false when there is none. */
  send(frame: AgentFrame): boolean;
  maxStreams?: number;
  log?: { warn(fields: Record<string, unknown>, msg: string): void };
}

interface Stream {
  outbox: Outbox;
  /** Credit arrived: move what waits, read more. */
  pump(): void;
  /** Stops reading the source (engine stream destroyed, subscription dropped). */
  release(): void;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 512);

/** The container serving an instance now: the one the server named, else the running one, else the newest version. */
export function pickContainer(found: ObservedContainer[], instanceId: string, hint: string | null): ObservedContainer | undefined {
  const mine = found.filter((c) => c.instanceId === instanceId && c.kind !== 'invocation');
  return (
    mine.find((c) => hint !== null && c.id === hint) ??
    mine.find((c) => c.state === 'running') ??
    [...mine].sort((a, b) => b.version - a.version)[0]
  );
}

/**
 * Serves the control plane's `logs` requests on this host: a replica's container logs from the
 * engine, or a running invocation's captured output. Only streams the server opened exist;
 * credit and cancel frames for anything else are ignored. Only this host's MACHETE containers
 * can be read: the container is looked up by its labels, never taken from the request as is.
 */
export class LogStreamer {
  private readonly streams = new Map<string, Stream>();
  private engineOpen = 0;

  constructor(private readonly d: LogStreamerDeps) {}

  /** Streams open (answered neither by logEnd nor cancelled). */
  active(): number {
    return this.streams.size;
  }

  /** Engine log reads not yet closed (for tests: a cancel must reach the engine). */
  engineStreams(): number {
    return this.engineOpen;
  }

  /** Bytes of data sent on the streams still open (for tests and diagnostics: a stalled client must stall this). */
  sentBytes(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.outbox.sentBytes;
    return n;
  }

  open(req: LogsRequest): void {
    if (this.streams.has(req.streamId)) return;
    if (this.streams.size >= (this.d.maxStreams ?? MAX_LOG_STREAMS)) {
      return void this.d.send({ type: 'logEnd', streamId: req.streamId, code: 'busy', reason: 'too many log streams on this host' });
    }
    const outbox = new Outbox(req.streamId, req.window, (f) => this.sendOrDrop(req.streamId, f));
    const s = req.target === 'invocation' ? this.liveStream(req, outbox) : this.engineStream(req, outbox);
    if (!s) return;
    outbox.onDrain = () => this.streams.get(req.streamId) === s && s.pump();
    this.streams.set(req.streamId, s);
  }

  credit(streamId: string, bytes: number): void {
    const s = this.streams.get(streamId);
    if (!s) return;
    s.outbox.grant(bytes);
    s.pump();
  }

  cancel(streamId: string): void {
    const s = this.streams.get(streamId);
    if (!s) return;
    this.streams.delete(streamId);
    s.release();
  }

  /** The connection is gone: the server has forgotten every stream. */
  closeAll(): void {
    for (const id of [...this.streams.keys()]) this.cancel(id);
  }

  /** Tells the server the stream is open (an empty chunk): it answers its HTTP client only then, so a refusal can still be a 404. */
  private ack(streamId: string): void {
    this.sendOrDrop(streamId, { type: 'logChunk', streamId, stream: 'stdout', data: '' });
  }

  private sendOrDrop(streamId: string, frame: AgentFrame): void {
    if (!this.d.send(frame)) this.cancel(streamId);
  }

  private end(streamId: string, code: LogEnd['code'], reason: string): void {
    const s = this.streams.get(streamId);
    if (!s) return;
    s.outbox.flush();
    this.streams.delete(streamId);
    s.release();
    this.d.send({ type: 'logEnd', streamId, code, reason });
  }

  private engineStream(req: LogsRequest, outbox: Outbox): Stream {
    let handle: LogHandle | null = null;
    let released = false;
    let sourceEnd: { code: LogEnd['code']; reason: string } | null = null;
    const finishIfDrained = () => sourceEnd && outbox.idle() && this.end(req.streamId, sourceEnd.code, sourceEnd.reason);
    const s: Stream = {
      outbox,
      pump: () => {
        if (outbox.hasRoom()) handle?.resume();
        finishIfDrained();
      },
      release: () => {
        released = true;
        handle?.close();
      },
    };
    void this.d.port
      .list(this.d.hostId)
      .then((found) => {
        if (released) return;
        const c = pickContainer(found, req.id, req.containerId);
        if (!c) return this.end(req.streamId, 'not_found', 'no container for this instance on the host');
        this.engineOpen++;
        this.ack(req.streamId);
        handle = this.d.port.logs(c.id, { follow: req.follow, tail: req.tail, since: req.since }, {
          data: (stream, chunk) => {
            outbox.push(stream, chunk);
            if (!outbox.hasRoom()) handle?.pause();
          },
          end: (err) => {
            this.engineOpen--;
            if (released) return;
            sourceEnd = err ? { code: 'unavailable', reason: `engine: ${message(err)}` } : { code: null, reason: req.follow ? 'container stopped' : 'end of log' };
            finishIfDrained();
          },
        });
      })
      .catch((err: unknown) => this.end(req.streamId, 'unavailable', `engine: ${message(err)}`));
    return s;
  }

  private liveStream(req: LogsRequest, outbox: Outbox): Stream | undefined {
    const live = this.d.live(req.id);
    if (!live) {
      this.d.send({ type: 'logEnd', streamId: req.streamId, code: 'not_found', reason: 'invocation not running on this host' });
      return undefined;
    }
    this.ack(req.streamId);
    const bufs = { stdout: live.stdout, stderr: live.stderr };
    const at = { stdout: 0, stderr: 0 };
    // Without follow: what was captured when asked, then the end.
    const stopAt = req.follow ? null : { stdout: live.stdout.length, stderr: live.stderr.length };
    const limit = (k: 'stdout' | 'stderr') => stopAt?.[k] ?? bufs[k].length;
    const pump = () => {
      while (outbox.hasRoom()) {
        const k = at.stdout < limit('stdout') ? 'stdout' : at.stderr < limit('stderr') ? 'stderr' : null;
        if (!k) break;
        const to = Math.min(limit(k), at[k] + LOG_CHUNK_BYTES);
        outbox.push(k, bufs[k].bytes(at[k], to));
        at[k] = to;
      }
      const caughtUp = at.stdout >= limit('stdout') && at.stderr >= limit('stderr') && outbox.idle();
      if (!caughtUp) return;
      if (stopAt) return this.end(req.streamId, null, 'end of output so far');
      if (!live.done) return;
      // Past the cap nothing was kept: say how much was lost rather than pretend it was not there.
      for (const k of ['stdout', 'stderr'] as const) if (bufs[k].truncated) outbox.drop(k, bufs[k].seen - bufs[k].length);
      this.end(req.streamId, null, 'invocation finished');
    };
    const unsubscribe = live.subscribe(() => this.streams.has(req.streamId) && pump());
    queueMicrotask(() => this.streams.has(req.streamId) && pump());
    return { outbox, pump, release: unsubscribe };
  }
}
