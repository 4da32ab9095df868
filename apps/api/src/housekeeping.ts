import type { Logger } from './logger.ts';
import type { HostService } from './services/hosts.ts';
import type { InvocationService } from './services/invocations.ts';
import type { Leadership } from './services/leadership.ts';

const SWEEP_MS = 5_000;
/** Rollouts wait for minimum-ready times and deadlines: a clock moves them, not only status reports. */
const ROLLOUT_TICK_MS = 1_000;

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
 * deadline or on lost hosts fail; rollouts in progress take their next step every second. Often enough to notice a silent host within about 1.5 grace
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
      await d.hosts.republishLagging();
      await d.invocations.sweep();
    } catch (err) {
      d.log.error({ err }, 'sweep failed');
    } finally {
      sweeping = false;
    }
  };
  let rolling = false;
  const rollouts = async () => {
    if (rolling || !d.leadership.isLeader()) return;
    rolling = true;
    try {
      await d.hosts.advanceRollouts();
    } catch (err) {
      d.log.error({ err }, 'rollout step failed');
    } finally {
      rolling = false;
    }
  };
  const timer = setInterval(() => void sweep(), Math.max(250, Math.min(SWEEP_MS, graceMs / 2)));
  const rolloutTimer = setInterval(() => void rollouts(), ROLLOUT_TICK_MS);
  return {
    runNow: () => void sweep(),
    stop: () => {
      clearInterval(timer);
      clearInterval(rolloutTimer);
    },
  };
}
