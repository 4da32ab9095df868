import type { LogHandle, LogOptions, LogSink } from './port.ts';

type Entry = { stream: 'stdout' | 'stderr'; data: Buffer };

interface Reader {
  containerId: string;
  queue: Entry[];
  paused: boolean;
  follow: boolean;
  done: boolean;
  sink: LogSink;
}

/**
 * The memory engine's logs: each container keeps what was written with `write` (one entry per
 * write, counted as one line by `tail`). Readers get entries asynchronously, honour pause, and
 * a follower ends when its container stops or goes.
 */
export class MemoryLogs {
  private readonly entries = new Map<string, Entry[]>();
  private readonly readers = new Set<Reader>();

  write(containerId: string, stream: 'stdout' | 'stderr', text: string): void {
    const e: Entry = { stream, data: Buffer.from(text, 'utf8') };
    this.entries.set(containerId, [...(this.entries.get(containerId) ?? []), e]);
    for (const r of this.readers) {
      if (r.containerId !== containerId || !r.follow) continue;
      r.queue.push(e);
      this.flush(r);
    }
  }

  /** Open readers (not yet ended). */
  open(): number {
    return this.readers.size;
  }

  /** The container stopped or was removed: followers end once their queue is delivered. */
  stopped(containerId: string, removed: boolean): void {
    if (removed) this.entries.delete(containerId);
    for (const r of this.readers) {
      if (r.containerId !== containerId) continue;
      r.follow = false;
      this.flush(r);
    }
  }

  read(containerId: string, running: boolean, opts: LogOptions, sink: LogSink): LogHandle {
    const all = this.entries.get(containerId) ?? [];
    const queue = opts.tail === null ? [...all] : opts.tail === 0 ? [] : all.slice(-opts.tail);
    const r: Reader = { containerId, queue, paused: false, follow: opts.follow && running, done: false, sink };
    this.readers.add(r);
    queueMicrotask(() => this.flush(r));
    return {
      pause: () => void (r.paused = true),
      resume: () => {
        r.paused = false;
        queueMicrotask(() => this.flush(r));
      },
      close: () => this.end(r),
    };
  }

  private flush(r: Reader): void {
    while (!r.done && !r.paused && r.queue.length) {
      const e = r.queue.shift()!;
      r.sink.data(e.stream, e.data);
    }
    if (!r.done && !r.follow && !r.queue.length) this.end(r);
  }

  private end(r: Reader): void {
    if (r.done) return;
    r.done = true;
    this.readers.delete(r);
    r.sink.end(null);
  }
}
