import type { OutputBuffer } from '../docker/port.ts';
import { CappedOutput } from '../docker/run.ts';

/**
 * A running invocation's output, readable while it runs. These are the very capped buffers
 * run() fills (no second copy): a log reader keeps a byte offset into each and is told when
 * more arrives. Past the cap nothing is kept, so a reader can only learn how much was dropped.
 */
export class LiveOutput {
  readonly stdout: CappedOutput;
  readonly stderr: CappedOutput;
  done = false;
  private readonly listeners = new Set<() => void>();

  constructor(cap: number) {
    this.stdout = new CappedOutput(cap);
    this.stderr = new CappedOutput(cap);
  }

  /** What run() writes into: every write is kept (up to the cap) and announced to readers. */
  sinks(): { stdout: OutputBuffer; stderr: OutputBuffer } {
    const wrap = (c: CappedOutput): OutputBuffer => ({
      write: (b) => {
        const before = c.length;
        c.write(b);
        if (c.length !== before) this.notify();
      },
      get truncated() {
        return c.truncated;
      },
      text: () => c.text(),
    });
    return { stdout: wrap(this.stdout), stderr: wrap(this.stderr) };
  }

  /** Calls `fn` after each write that kept bytes, and once when the run is over. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  finish(): void {
    this.done = true;
    this.notify();
    this.listeners.clear();
  }

  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }
}
