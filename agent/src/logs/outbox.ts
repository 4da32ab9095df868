import { StringDecoder } from 'node:string_decoder';
import { LOG_CHUNK_BYTES, type LogChunk } from '../../../protocol/src/index.ts';

type StreamName = 'stdout' | 'stderr';

/**
 * The sending side of one log stream's credit window. Bytes become UTF-8 text (one decoder per
 * stream, so a character split across engine chunks stays whole), cut into chunks of at most
 * LOG_CHUNK_BYTES. Chunks go out while credit lasts; the rest waits here, and the owner stops
 * reading its source while `hasRoom()` is false, so what waits is at most one window plus one source read.
 * Credit is counted in bytes of the encoded text, as the server counts it.
 */
export class Outbox {
  private credit: number;
  private readonly pending: { stream: StreamName; data: Buffer }[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  /** Bytes lost before the next chunk of each stream (reported with it). */
  private readonly dropped = { stdout: 0, stderr: 0 };
  sentBytes = 0;
  /** Called after a deferred drain, so the owner can read more or finish. */
  onDrain: () => void = () => {};

  constructor(
    private readonly streamId: string,
    window: number,
    private readonly send: (frame: LogChunk) => void,
  ) {
    this.credit = window;
  }

  /** Credit left after what already waits here: the owner stops reading at zero. */
  hasRoom(): boolean {
    return this.credit - this.pendingBytes > 0;
  }

  idle(): boolean {
    return this.pending.length === 0 && !this.scheduled;
  }

  /**
   * Queues bytes; they go out on the next microtask, merged with what else arrived meanwhile.
   * The engine's json-file reader sends one multiplexed frame per log line: sending each as its
   * own chunk would cost a WebSocket frame and an SSE event per line.
   */
  push(stream: StreamName, data: Buffer): void {
    if (!data.length) return;
    this.pending.push({ stream, data });
    this.pendingBytes += data.length;
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.drain();
      this.onDrain();
    });
  }

  /** Bytes the source discarded (past a cap): reported with the next chunk, or by flush(). */
  drop(stream: StreamName, bytes: number): void {
    this.dropped[stream] += bytes;
  }

  grant(bytes: number): void {
    this.credit += bytes;
    this.drain();
  }

  /** The source is over (and what waited has gone): the decoders' held-back bytes and unreported drops go out. */
  flush(): void {
    this.drain();
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.decoders[stream].end();
      if (rest || this.dropped[stream]) this.emit(stream, rest);
    }
  }

  /** Sends while credit lasts: runs of one stream merged into chunks of at most LOG_CHUNK_BYTES. */
  private drain(): void {
    while (this.credit > 0 && this.pending.length) {
      const stream = this.pending[0]!.stream;
      const parts: Buffer[] = [];
      let size = 0;
      while (this.pending.length && this.pending[0]!.stream === stream && size < LOG_CHUNK_BYTES) {
        const p = this.pending[0]!;
        const take = Math.min(p.data.length, LOG_CHUNK_BYTES - size);
        parts.push(p.data.subarray(0, take));
        size += take;
        if (take === p.data.length) this.pending.shift();
        else p.data = p.data.subarray(take);
      }
      this.pendingBytes -= size;
      const text = this.decoders[stream].write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
      if (text) this.emit(stream, text);
    }
  }

  private emit(stream: StreamName, data: string): void {
    const bytes = Buffer.byteLength(data);
    this.credit -= bytes;
    this.sentBytes += bytes;
    const dropped = this.dropped[stream];
    this.dropped[stream] = 0;
    this.send({ type: 'logChunk', streamId: this.streamId, stream, data, ...(dropped ? { dropped } : {}) });
  }
}
