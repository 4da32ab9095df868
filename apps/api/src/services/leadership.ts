/**
 * Which replica is the scheduler/housekeeping leader: whoever holds the advisory lock. The lock
 * is tried (or, once held, proven) on its own timer, never from inside housekeeping work: a long
 * sweep must not leave the lock session silent past its idle timeout (db LOCK_SESSION), and a
 * replica must notice a dead leader within one tick, not one sweep.
 *
 * Leadership only decides who runs housekeeping. Correctness never rests on it being exclusive:
 * placement takes the tool's row lock in every transaction, so a deposed leader finishing its
 * last sweep cannot place a duplicate.
 */
export interface Leadership {
  isLeader(): boolean;
  /** When this replica last became leader (ms since epoch), or null while it is not. */
  since(): number | null;
  stop(): void;
}

export interface LeadershipOptions {
  /** One attempt: true while the lock is held (database.tryAdvisoryLock). */
  tryLock(): Promise<boolean>;
  intervalMs: number;
  /** Told on every change, after the new state is visible through isLeader(). */
  onChange?(leader: boolean): void;
}

export function startLeadership(opts: LeadershipOptions): Leadership {
  let since: number | null = null;
  let busy = false;
  let stopped = false;
  const tick = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const held = await opts.tryLock().catch(() => false);
      if (stopped || held === (since !== null)) return;
      since = held ? Date.now() : null;
      opts.onChange?.(held);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs);
  void tick();
  return {
    isLeader: () => since !== null,
    since: () => since,
    stop() {
      stopped = true;
      since = null;
      clearInterval(timer);
    },
  };
}
