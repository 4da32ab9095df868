import type { DesiredInstance, InstanceState, InstanceStatus } from '../../../protocol/src/index.ts';
import type { ObservedContainer } from '../docker/port.ts';
import type { CrashInfo } from './crashLoop.ts';
import { groupByInstance, rankContainers } from './plan.ts';

const NO_CRASH: CrashInfo = { crashLoop: false, backoffSeconds: null, lastExitCode: null };

// InstanceStatusSchema caps `reason`; a longer engine message would make the whole frame invalid.
const MAX_REASON = 1024;

const clip = (s: string): string => (s.length > MAX_REASON ? `${s.slice(0, MAX_REASON - 1)}…` : s);

function stateOf(inst: DesiredInstance, c: ObservedContainer | undefined, reason: string | undefined): InstanceState {
  if (!c) {
    if (reason !== undefined) return 'failed';
    return inst.desired === 'stopped' ? 'exited' : 'pending';
  }
  if (c.state === 'running' || c.state === 'paused') return 'running';
  // A reason on a non-running instance means it is not coming back by itself
  // (refused, image missing, engine error) or is held back by crash-loop backoff.
  if (reason !== undefined) return 'failed';
  if (c.state === 'created' || c.state === 'restarting') return 'starting';
  // Stopped on purpose: whatever code the stop signal left is the expected outcome.
  if (inst.desired === 'stopped') return 'exited';
  return c.state === 'exited' && c.exitCode === 0 ? 'exited' : 'failed';
}

/**
 * An OOM kill is the reason a replica failed, whatever else this pass says about it (a restart held
 * back by the crash-loop backoff): exit code 137 alone does not tell it from any other SIGKILL.
 */
function withOom(inst: DesiredInstance, c: ObservedContainer | undefined, reason: string | undefined): string | undefined {
  if (!c?.oomKilled || c.state === 'running') return reason;
  const oom = `out of memory: killed at the tool's memory limit (${inst.spec.resources.memoryMb} MiB)`;
  return reason === undefined ? oom : `${oom}; ${reason}`;
}

/**
 * What the agent reports for each desired instance (sorted by id), from the
 * containers just read back. `lastErrors` holds this pass's reasons per instance
 * (policy refusal, missing image, engine error, crash-loop backoff).
 */
export function statusOf(
  desired: readonly DesiredInstance[],
  observed: readonly ObservedContainer[],
  lastErrors: ReadonlyMap<string, string>,
  restarts: ReadonlyMap<string, number>,
  crash: (id: string) => CrashInfo = () => NO_CRASH,
): InstanceStatus[] {
  const groups = groupByInstance(observed);
  return [...desired]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((inst) => {
      const c = rankContainers(groups.get(inst.id) ?? [], inst.version)[0];
      const reason = withOom(inst, c, lastErrors.get(inst.id));
      return {
        id: inst.id,
        state: stateOf(inst, c, reason),
        containerId: c?.id ?? null,
        exitCode: c?.exitCode ?? null,
        restarts: restarts.get(inst.id) ?? 0,
        reason: reason === undefined ? null : clip(reason),
        version: c?.version ?? null,
        // Only a running container has a health worth reporting; the engine keeps a stale one after exit.
        health: c?.state === 'running' ? (c.health ?? 'none') : 'none',
        ...crash(inst.id),
      };
    });
}

function sameStatus(a: InstanceStatus, b: InstanceStatus): boolean {
  return (
    a.state === b.state &&
    a.containerId === b.containerId &&
    a.exitCode === b.exitCode &&
    a.restarts === b.restarts &&
    a.reason === b.reason &&
    a.version === b.version &&
    a.health === b.health &&
    a.crashLoop === b.crashLoop &&
    a.backoffSeconds === b.backoffSeconds &&
    a.lastExitCode === b.lastExitCode
  );
}

/** The statuses that differ from what was last sent (or were never sent), in input order. */
export function diffStatus(prev: ReadonlyMap<string, InstanceStatus>, next: readonly InstanceStatus[]): InstanceStatus[] {
  return next.filter((s) => {
    const before = prev.get(s.id);
    return before === undefined || !sameStatus(before, s);
  });
}
