import { StringDecoder } from 'node:string_decoder';
import { LOG_CHUNK_BYTES, type LogChunk } from '../../../protocol/src/index.ts';

type StreamName = 'stdout' | 'stderr';

/**
 * The sending side of one log stream's credit window. Bytes become UTF-8 text (one decoder per
 * stream, so a character split across engine chunks stays whole), cut into chunks of at most
 * LOG_CHUNK_BYTES. Chunks go out while credit lasts; the rest waits here, and the owner stops
 * reading its source while `hasRoom()` is false, so what waits is at most one source read.
 * Credit is counted in bytes of the encoded text, as the server counts it.
 */
export class Outbox {
  private credit: number;
  private readonly pending: { stream: StreamName; data: Buffer }[] = [];
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  /** Bytes lost before the next chunk of each stream (reported with it). */
  private readonly dropped = { stdout: 0, stderr: 0 };
  sentBytes = 0;

  constructor(
    private readonly streamId: string,
    window: number,
    private readonly send: (frame: LogChunk) => void,
  ) {
    this.credit = window;
  }

  hasRoom(): boolean {
    return this.credit > 0 && this.pending.length === 0;
  }

  idle(): boolean {
    return this.pending.length === 0;
  }

  push(stream: StreamName, data: Buffer): void {
    for (let at = 0; at < data.length; at += LOG_CHUNK_BYTES) this.pending.push({ stream, data: data.subarray(at, at + LOG_CHUNK_BYTES) });
    this.drain();
  }

  /** Bytes the source discarded (past a cap): reported with the next chunk, or by flush(). */
  drop(stream: StreamName, bytes: number): void {
    this.dropped[stream] += bytes;
  }

  grant(bytes: number): void {
    this.credit += bytes;
    this.drain();
  }

  /** The source is over: the decoders' held-back bytes and unreported drops go out (credit or not). */
  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.decoders[stream].end();
      if (rest || this.dropped[stream]) this.emit(stream, rest);
    }
  }

  private drain(): void {
    while (this.credit > 0 && this.pending.length) {
      const p = this.pending.shift()!;
      const text = this.decoders[p.stream].write(p.data);
      if (text) this.emit(p.stream, text);
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
