import type { Logger } from './logger.ts';
import type { HostService } from './services/hosts.ts';
import type { InvocationService } from './services/invocations.ts';
import type { Leadership } from './services/leadership.ts';

const SWEEP_MS = 5_000;

export interface HousekeepingDeps {
  leadership: Leadership;
  hosts: HostService;
  invocations: InvocationService;
  /** Hosts whose agent is connected to this replica. */
  connectedHosts(): Set<string>;
  heartbeatGraceSeconds: number;
  log: Logger;
}

/**
 * Level-triggered housekeeping, run by the leader only: silent hosts go down (their replicas
 * are lost and placed elsewhere); pending replicas get another chance; invocations past their
 * deadline or on lost hosts fail. Often enough to notice a silent host within about 1.5 grace
 * periods; `runNow` lets a new leader start at once rather than at its next tick.
 */
export function startHousekeeping(d: HousekeepingDeps): { runNow(): void; stop(): void } {
  const graceMs = d.heartbeatGraceSeconds * 1000;
  let sweeping = false;
  const sweep = async () => {
    const since = d.leadership.since();
    if (sweeping || since === null) return;
    sweeping = true;
    try {
      // A new leader (or a restarted control plane) gives every agent one grace period to
      // reconnect before calling its host down, as Nomad does after a leader election.
      if (Date.now() - since >= graceMs) await d.hosts.markSilentDown(d.heartbeatGraceSeconds, d.connectedHosts());
      await d.hosts.reschedule();
      await d.invocations.sweep();
    } catch (err) {
      d.log.error({ err }, 'sweep failed');
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(() => void sweep(), Math.max(250, Math.min(SWEEP_MS, graceMs / 2)));
  return {
    runNow: () => void sweep(),
    stop: () => clearInterval(timer),
  };
}
