import type { DesiredInstance, InstanceKind } from '../../../protocol/src/index.ts';
import { Labels } from '../../../protocol/src/index.ts';
import type { ObservedContainer } from '../docker/port.ts';
import { secretsDigest } from '../docker/secrets.ts';

/**
 * The pure diff at the heart of the agent, in the spirit of Nomad's diffAllocs and
 * kubelet's syncPod: desired instances vs. containers read back from the engine.
 * No clock, no I/O: time-based decisions (crash-loop backoff) belong to the loop.
 */

/**
 * 'version': the container runs another tool version. 'secrets': a secret it mounts has a new value.
 * 'restart': it exited and the restart policy wants it back.
 */
export type ReplaceReason = 'version' | 'secrets' | 'restart';
/** 'duplicate': another container serves the same instance better. 'orphan': no desired instance owns it. */
export type RemoveReason = 'duplicate' | 'orphan';

export interface Plan {
  create: DesiredInstance[];
  replace: { desired: DesiredInstance; container: ObservedContainer; why: ReplaceReason }[];
  /** Containers that were created but never started (an agent that died between create and start). */
  start: { desired: DesiredInstance; container: ObservedContainer }[];
  stop: ObservedContainer[];
  remove: { container: ObservedContainer; why: RemoveReason }[];
  keep: ObservedContainer[];
}

export interface PlanOptions {
  /**
   * True only once the complete desired state of this host is known (a snapshot
   * on the current connection). Until then nothing is removed as an orphan: a
   * container we do not know about may belong to an instance we have not heard of yet.
   */
  fullStateKnown: boolean;
}

// 'paused' and 'restarting' still hold the instance's process; treating them as live
// avoids replacing a container the engine (or an operator) is busy with.
const LIVE_STATES = new Set(['running', 'paused', 'restarting']);

export const isLive = (c: ObservedContainer): boolean => LIVE_STATES.has(c.state);

/**
 * Only replicas are reconciled. Invocation containers belong to the invocation runner, which
 * removes them itself (and sweeps leftovers at start); `warm` sandboxes will have their own pool.
 * The loop must neither remove them as orphans nor count them for an instance.
 */
export const isReconciled = (kind: InstanceKind): boolean => kind === 'replica';

/** Containers the engine is already deleting do not count for anything. */
export function groupByInstance(observed: readonly ObservedContainer[]): Map<string, ObservedContainer[]> {
  const groups = new Map<string, ObservedContainer[]>();
  for (const c of observed) {
    if (c.state === 'removing') continue;
    const list = groups.get(c.instanceId);
    if (list) list.push(c);
    else groups.set(c.instanceId, [c]);
  }
  return groups;
}

/**
 * Best container first: live and of the wanted version; otherwise the newest.
 * The port exposes no creation time, so "newest" is the highest machete.revision
 * label (a later desired change), then live over stopped, then id for determinism.
 */
export function rankContainers(containers: readonly ObservedContainer[], version: number | undefined): ObservedContainer[] {
  const ideal = (c: ObservedContainer) => (isLive(c) && c.version === version ? 1 : 0);
  return [...containers].sort(
    (a, b) =>
      ideal(b) - ideal(a) ||
      b.revision - a.revision ||
      Number(isLive(b)) - Number(isLive(a)) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/**
 * Whether a stopped container of the right version should run again. Invocations
 * are run-once whatever the policy says: re-running one would repeat its side
 * effects and overwrite the result its caller is waiting for.
 */
export function wantsRestart(inst: DesiredInstance, c: ObservedContainer): boolean {
  if (inst.kind === 'invocation') return false;
  switch (inst.spec.restart) {
    case 'always':
      return true;
    case 'on-failure':
      // An unknown exit code is a failure: we cannot prove the tool finished cleanly.
      return c.exitCode !== 0;
    case 'never':
      return false;
  }
}

function planInstance(inst: DesiredInstance, c: ObservedContainer, out: Plan): void {
  if (inst.desired === 'stopped') {
    if (isLive(c)) out.stop.push(c);
    else out.keep.push(c);
    return;
  }
  if (c.version !== inst.version) {
    out.replace.push({ desired: inst, container: c, why: 'version' });
  } else if ((c.labels[Labels.secrets] ?? '') !== (secretsDigest(inst.spec.secrets, inst.secrets) ?? '')) {
    // Secrets are files in the container's own volume: a rotation reaches the tool through a new container.
    out.replace.push({ desired: inst, container: c, why: 'secrets' });
  } else if (isLive(c)) {
    out.keep.push(c);
  } else if (c.state === 'created' && c.exitCode === null) {
    // Never ran: starting it is its first run, not a restart, whatever the policy.
    out.start.push({ desired: inst, container: c });
  } else if (wantsRestart(inst, c)) {
    // Restart by replacement: a fresh container is simpler to reason about and to adopt.
    out.replace.push({ desired: inst, container: c, why: 'restart' });
  } else {
    out.keep.push(c);
  }
}

export function emptyPlan(): Plan {
  return { create: [], replace: [], start: [], stop: [], remove: [], keep: [] };
}

/** Every list comes out sorted by instance id, so equal inputs give equal plans. */
export function plan(desired: readonly DesiredInstance[], observed: readonly ObservedContainer[], opts: PlanOptions): Plan {
  const out = emptyPlan();
  const wanted = new Map(desired.filter((d) => isReconciled(d.kind)).map((d) => [d.id, d]));
  const groups = groupByInstance(observed.filter((c) => isReconciled(c.kind)));
  const ids = [...new Set([...wanted.keys(), ...groups.keys()])].sort();
  for (const id of ids) {
    const inst = wanted.get(id);
    const containers = groups.get(id) ?? [];
    if (!inst) {
      for (const c of rankContainers(containers, undefined)) {
        if (opts.fullStateKnown) out.remove.push({ container: c, why: 'orphan' });
        else out.keep.push(c);
      }
      continue;
    }
    const [best, ...extras] = rankContainers(containers, inst.version);
    if (!best) {
      if (inst.desired === 'running') out.create.push(inst);
      continue;
    }
    for (const extra of extras) out.remove.push({ container: extra, why: 'duplicate' });
    planInstance(inst, best, out);
  }
  return out;
}

/** True when applying the plan would not touch the engine. */
export function isNoop(p: Plan): boolean {
  return p.create.length + p.replace.length + p.start.length + p.stop.length + p.remove.length === 0;
}
