import type { ObservedContainer } from '../docker/port.ts';

/** What the agent reports about an instance's restarts (InstanceStatus crashLoop, backoffSeconds, lastExitCode). */
export interface CrashInfo {
  crashLoop: boolean;
  backoffSeconds: number | null;
  lastExitCode: number | null;
}

export interface CrashLoopOptions {
  initialMs: number;
  maxMs: number;
  resetAfterMs: number;
}

interface Backoff {
  /** The wait before the next restart, counted from when that failure is first seen. */
  delayMs: number;
  /** The failed container the wait is counted for, and until when (null: no failure seen since the last restart). */
  failed: { containerId: string; notBefore: number } | null;
  /** Restarts since the instance last ran steadily for resetAfterMs. */
  streak: number;
  /** Failed again and waiting out `delayMs` (set by the pass that held it back). */
  held: boolean;
}

/** One failure restarted at once is a blip; failing again inside the reset window is a loop. */
const LOOP_AFTER_RESTARTS = 2;

/**
 * Restart counts and crash-loop backoff per instance. In memory only: an agent
 * restart forgets them, which is acceptable since the engine still holds every
 * container and the counts are informational.
 */
export class CrashLoop {
  readonly restarts = new Map<string, number>();
  private readonly backoff = new Map<string, Backoff>();
  private readonly lastExit = new Map<string, number | null>();
  private readonly runningSince = new Map<string, { containerId: string; since: number }>();
  constructor(private readonly opts: CrashLoopOptions) {}

  /**
   * How long the restart of this failed container must still wait. The first failure restarts at
   * once; after that the wait doubles per restart and runs from when the failure was first seen,
   * not from the previous start: a tool that fails after a while waits as long as one that fails at once.
   */
  heldFor(id: string, containerId: string, now: number): number {
    const b = this.backoff.get(id);
    if (!b) return 0;
    if (b.failed?.containerId !== containerId) b.failed = { containerId, notBefore: now + b.delayMs };
    return Math.max(0, b.failed.notBefore - now);
  }

  /** The pass left a failed container in place until its backoff elapses. */
  noteHeld(id: string): void {
    const b = this.backoff.get(id);
    if (b) b.held = true;
  }

  noteRestart(id: string, exitCode: number | null): void {
    const prev = this.backoff.get(id);
    const delayMs = prev ? Math.min(prev.delayMs * 2, this.opts.maxMs) : this.opts.initialMs;
    this.backoff.set(id, { delayMs, failed: null, streak: (prev?.streak ?? 0) + 1, held: false });
    this.restarts.set(id, (this.restarts.get(id) ?? 0) + 1);
    this.lastExit.set(id, exitCode);
  }

  /** Crash-looping from the first hold-back (or second restart) until a container runs for resetAfterMs. */
  info(id: string): CrashInfo {
    const b = this.backoff.get(id);
    const crashLoop = !!b && (b.held || b.streak >= LOOP_AFTER_RESTARTS);
    return { crashLoop, backoffSeconds: crashLoop ? Math.ceil(b.delayMs / 1000) : null, lastExitCode: this.lastExit.get(id) ?? null };
  }

  /** A container seen running for resetAfterMs clears its instance's backoff (not its count). */
  observe(observed: readonly ObservedContainer[], desired: ReadonlyMap<string, unknown>, now: number): void {
    for (const c of observed) {
      if (c.state !== 'running') continue;
      const seen = this.runningSince.get(c.instanceId);
      if (!seen || seen.containerId !== c.id) this.runningSince.set(c.instanceId, { containerId: c.id, since: now });
      else if (now - seen.since >= this.opts.resetAfterMs) this.backoff.delete(c.instanceId);
    }
    for (const map of [this.restarts, this.backoff, this.lastExit, this.runningSince]) for (const id of map.keys()) if (!desired.has(id)) map.delete(id);
  }
}
