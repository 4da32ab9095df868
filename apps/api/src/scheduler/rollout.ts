/**
 * Rolling updates, pure: given a deployment's rollout record and its replicas as last reported,
 * decide one step. A new version replaces replicas one at a time: placement adds ONE instance of
 * the new version (the surge), the step waits until it is ready (running, healthy when the spec
 * has a health check, for minReadyMs, never restarted), then stops ONE old instance, waits until
 * its agent reports it stopped, tombstones it and lets the next surge in. So between `replicas`
 * and `replicas + 1` containers run throughout. A new-version instance that fails (exits, crash-
 * loops, turns unhealthy, or is not ready within deadlineMs) rolls the deployment back to the
 * version it rolled from; the old replicas were never touched, so a bad version costs nothing.
 * No clock and no I/O here: scheduler.ts reads, calls stepRollout, and writes in one transaction.
 */

export const ROLLOUT_STATES = ['progressing', 'complete', 'rolled_back'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export interface RolloutRecord {
  /** The last version all replicas ran ready at once. */
  stable: number | null;
  from: number | null;
  to: number | null;
  state: RolloutState | null;
  reason: string | null;
  /** Epoch ms. */
  startedAt: number | null;
}
export const EMPTY_RECORD: RolloutRecord = { stable: null, from: null, to: null, state: null, reason: null, startedAt: null };

export interface RolloutInstance {
  id: string;
  hostId: string | null;
  version: number;
  desired: 'running' | 'stopped';
  state: string;
  runningVersion: number | null;
  health: string | null;
  restarts: number;
  crashLoop: boolean;
  exitCode: number | null;
  lastExitCode: number | null;
  reason: string | null;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms since the reported container runs; null when it does not. */
  runningSince: number | null;
  /** False when its host is down or gone: placement declares it lost; the rollout does not judge it. */
  hostUp: boolean;
}

export interface RolloutPolicy {
  /** A new instance must run (and be healthy) this long before an old one is stopped. */
  minReadyMs: number;
  /** A new instance not ready this long after it was created fails the rollout. */
  deadlineMs: number;
}
export const DEFAULT_ROLLOUT_POLICY: RolloutPolicy = { minReadyMs: 2_000, deadlineMs: 60_000 };

/**
 * The policy for one target version: a health-checked version gets at least the time its own
 * check needs to call it healthy at the latest (start period, then every retry timing out),
 * plus the minimum-ready time. A fixed 60 s would roll back every slow starter (a JVM with a
 * 120 s start period) whatever its health.
 */
export function policyFor(policy: RolloutPolicy, healthCheck?: { intervalSeconds: number; timeoutSeconds: number; retries: number; startPeriodSeconds: number }): RolloutPolicy {
  if (!healthCheck) return policy;
  const { intervalSeconds, timeoutSeconds, retries, startPeriodSeconds } = healthCheck;
  const checkMs = (startPeriodSeconds + (intervalSeconds + timeoutSeconds) * (retries + 1)) * 1000 + policy.minReadyMs;
  return checkMs > policy.deadlineMs ? { ...policy, deadlineMs: checkMs } : policy;
}

export interface RolloutInput {
  replicas: number;
  /** The deployment's pinned version, else the tool's current one; 0 when there is none. */
  desiredVersion: number;
  record: RolloutRecord;
  /** Replicas not tombstoned (desired running or stopped). */
  instances: RolloutInstance[];
  /** The target version's spec has a health check: new instances must report healthy. */
  healthChecked: boolean;
  now: number;
  policy: RolloutPolicy;
}

export interface RolloutNote {
  action: 'rollout.started' | 'rollout.progress' | 'rollout.complete' | 'rollout.rolled_back';
  outcome: 'ok' | 'error';
  reason: string;
  data: Record<string, unknown>;
}

export interface RolloutStep {
  /** The version new instances get. */
  target: number;
  /** Placement may run `replicas + surge` instances: the one new-version instance in flight. */
  surge: 0 | 1;
  /** The instances placement counts (desired running and not retired by this step). */
  counted: RolloutInstance[];
  /** To be marked desired `stopped` (their agents stop the containers and report it). */
  stop: string[];
  /** To be tombstoned (desired `removed`). */
  tombstone: string[];
  record: RolloutRecord;
  notes: RolloutNote[];
}

/** A failed rollout holds the deployment at the version it came from until the target moves. */
export function targetVersion(desiredVersion: number, record: RolloutRecord): number {
  if (record.state === 'rolled_back' && record.to === desiredVersion && record.from !== null) return record.from;
  return desiredVersion;
}

/** Serving: an old instance whose container runs. Only these are worth protecting during a rollout. */
const serving = (i: RolloutInstance) => i.state === 'running';
const live = (i: RolloutInstance) => i.state === 'running' || i.state === 'starting';

export function isReady(i: RolloutInstance, healthChecked: boolean, now: number, minReadyMs: number): boolean {
  return (
    i.state === 'running' &&
    i.runningVersion === i.version &&
    i.restarts === 0 &&
    !i.crashLoop &&
    (!healthChecked || i.health === 'healthy') &&
    i.runningSince !== null &&
    now - i.runningSince >= minReadyMs
  );
}

/** Why a new-version instance counts as failed, or null while it may still become ready. */
export function failureOf(i: RolloutInstance, healthChecked: boolean, now: number, policy: RolloutPolicy): string | null {
  const code = i.exitCode ?? i.lastExitCode;
  if (i.restarts > 0 || i.crashLoop) {
    const times = `restarted ${i.restarts} time${i.restarts === 1 ? '' : 's'}`;
    return code !== null ? `exited with code ${code} (${times})` : `crash-looping (${times})`;
  }
  if (i.state === 'failed' || i.state === 'exited') {
    if (i.exitCode !== null) return `exited with code ${i.exitCode}`;
    return i.reason ?? 'failed';
  }
  if (healthChecked && i.state === 'running' && i.health === 'unhealthy') return 'health check failed (unhealthy)';
  if (isReady(i, healthChecked, now, policy.minReadyMs)) return null;
  if (now - i.createdAt > policy.deadlineMs) {
    const what = healthChecked ? 'running and healthy' : 'running';
    const detail = i.reason ?? (healthChecked && i.state === 'running' ? `health ${i.health ?? 'none'}` : `state ${i.state}`);
    return `not ${what} within ${Math.round(policy.deadlineMs / 1000)}s (${detail})`;
  }
  return null;
}

/** The version most serving instances run (ties: the highest). */
function majorityVersion(list: RolloutInstance[]): number | null {
  const counts = new Map<number, number>();
  for (const i of list) counts.set(i.version, (counts.get(i.version) ?? 0) + 1);
  let best: [number, number] | null = null;
  for (const [v, n] of counts) if (!best || n > best[1] || (n === best[1] && v > best[0])) best = [v, n];
  return best?.[0] ?? null;
}

/** Starts a rollout when the target moved and something (or a known good version) is there to return to. */
function maybeStart(input: RolloutInput, target: number, record: RolloutRecord, notes: RolloutNote[]): RolloutRecord {
  if (target === 0 || record.to === target || target !== input.desiredVersion) return record;
  const servingOld = input.instances.filter((i) => i.desired === 'running' && i.version !== target && serving(i));
  const from = record.stable !== null && record.stable !== target ? record.stable : majorityVersion(servingOld);
  if (from === null || from === target) {
    // Nothing runs that a new version could break (a first deployment): no rollout to track.
    return record.to === null ? record : { ...EMPTY_RECORD, stable: record.stable };
  }
  notes.push({
    action: 'rollout.started',
    outcome: 'ok',
    reason: `rolling ${input.replicas} replica${input.replicas === 1 ? '' : 's'} from version ${from} to version ${target}, one at a time`,
    data: { from, to: target, replicas: input.replicas },
  });
  return { stable: record.stable, from, to: target, state: 'progressing', reason: null, startedAt: input.now };
}

/** Picks `n` old instances to stop: from the host crowded most by this tool first (keeps the spread), then by id. */
function pickOld(old: RolloutInstance[], counted: RolloutInstance[], n: number): RolloutInstance[] {
  const perHost = new Map<string, number>();
  for (const i of counted) if (i.hostId) perHost.set(i.hostId, (perHost.get(i.hostId) ?? 0) + 1);
  const crowd = (i: RolloutInstance) => (i.hostId ? (perHost.get(i.hostId) ?? 0) : 0);
  return [...old].sort((a, b) => crowd(b) - crowd(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, n);
}

function rollBack(input: RolloutInput, record: RolloutRecord, failed: RolloutInstance, why: string): RolloutStep {
  const from = record.from!;
  const reason = `version ${record.to} failed: ${why}; rolled back to version ${from}`;
  // Everything not of the good version goes; placement refills at `from` right away.
  const tombstone = input.instances.filter((i) => i.version !== from).map((i) => i.id);
  const gone = new Set(tombstone);
  return {
    target: from,
    surge: 0,
    counted: input.instances.filter((i) => i.desired === 'running' && !gone.has(i.id)),
    stop: [],
    tombstone,
    record: { ...record, state: 'rolled_back', reason },
    notes: [{ action: 'rollout.rolled_back', outcome: 'error', reason, data: { from: record.to, to: from, instance: failed.id, hostId: failed.hostId } }],
  };
}

/** One step of the rollout state machine (see the file comment). Equal inputs give equal steps. */
export function stepRollout(input: RolloutInput): RolloutStep {
  const { now, policy, healthChecked, replicas } = input;
  const notes: RolloutNote[] = [];
  const target = targetVersion(input.desiredVersion, input.record);
  let record = maybeStart(input, target, input.record, notes);
  const progressing = record.state === 'progressing' && record.to === target;
  const wanted = input.instances.filter((i) => i.desired === 'running');
  const news = wanted.filter((i) => i.version === target);

  if (progressing) {
    for (const i of news.filter((n) => n.hostUp)) {
      const why = failureOf(i, healthChecked, now, policy);
      if (why !== null) return rollBack(input, record, i, why);
    }
  }
  const tombstone: string[] = [];
  // Stopping old instances go for good once their agent reports them stopped (or their host is gone).
  const stopping = input.instances.filter((i) => i.desired === 'stopped');
  for (const i of stopping) if (!live(i) || !i.hostUp) tombstone.push(i.id);
  const waiting = stopping.length > tombstone.length;
  // An old instance that serves nothing is not worth keeping: placement replaces it at the target.
  for (const i of wanted) if (i.version !== target && i.hostUp && !serving(i)) tombstone.push(i.id);
  const gone = new Set(tombstone);
  const counted = wanted.filter((i) => !gone.has(i.id));
  const old = counted.filter((i) => i.version !== target && i.hostUp);
  const newsUp = news.filter((i) => i.hostUp);
  const ready = newsUp.filter((i) => isReady(i, healthChecked, now, policy.minReadyMs));
  const stop: string[] = [];
  let surge: 0 | 1 = 0;

  if (old.length > 0 && !waiting) {
    const excess = old.length + newsUp.length - replicas;
    if (ready.length === newsUp.length && excess > 0) {
      const victims = pickOld(old, counted, excess);
      stop.push(...victims.map((v) => v.id));
      notes.push({
        action: 'rollout.progress',
        outcome: 'ok',
        reason: `version ${target} is ready on ${ready.length} of ${replicas} replica${replicas === 1 ? '' : 's'}; stopping one of version ${victims[0]!.version}`,
        data: { to: target, ready: ready.length, replicas, stopping: stop },
      });
    } else if (ready.length === newsUp.length || excess > 0) {
      // Room for exactly one new instance in flight (or keep the one already there).
      surge = 1;
    }
  }
  const settled = old.length === 0 && !waiting && stopping.length === 0 && newsUp.length >= replicas && ready.length >= replicas;
  if (settled && replicas > 0) {
    if (progressing) {
      record = { ...record, state: 'complete', reason: null };
      notes.push({ action: 'rollout.complete', outcome: 'ok', reason: `all ${replicas} replica${replicas === 1 ? '' : 's'} run version ${target}`, data: { from: record.from, to: target, replicas } });
    }
    if (record.stable !== target) record = { ...record, stable: target };
  } else if (progressing && replicas === 0 && wanted.length === 0 && stopping.length === 0) {
    // Scaled to zero mid-rollout: nothing is left to replace, and a later scale-up starts at the target.
    record = { ...record, state: 'complete', reason: null };
    notes.push({ action: 'rollout.complete', outcome: 'ok', reason: 'no replicas left to roll', data: { from: record.from, to: target, replicas } });
  }
  const stopped = new Set(stop);
  return { target, surge, counted: counted.filter((i) => !stopped.has(i.id)), stop, tombstone, record, notes };
}
