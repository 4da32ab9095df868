import { describe, expect, it } from 'vitest';
import { planTool } from './place.ts';
import { EMPTY_RECORD, policyFor, stepRollout, targetVersion, type RolloutInput, type RolloutInstance, type RolloutRecord, type RolloutStep } from './rollout.ts';

const POLICY = { minReadyMs: 2_000, deadlineMs: 60_000 };
const T0 = 1_000_000;

/** A replica that has run version `version` ready since long before T0. */
function inst(id: string, version: number, o: Partial<RolloutInstance> = {}): RolloutInstance {
  return {
    id,
    hostId: `h${id.slice(-1)}`,
    version,
    desired: 'running',
    state: 'running',
    runningVersion: version,
    health: 'none',
    restarts: 0,
    crashLoop: false,
    exitCode: null,
    lastExitCode: null,
    reason: null,
    createdAt: T0 - 600_000,
    runningSince: T0 - 600_000,
    hostUp: true,
    ...o,
  };
}
const stable = (v: number): RolloutRecord => ({ ...EMPTY_RECORD, stable: v });
const step = (o: Partial<RolloutInput>): RolloutStep =>
  stepRollout({ replicas: 3, desiredVersion: 2, record: stable(1), instances: [], healthChecked: false, now: T0, policy: POLICY, ...o });
const old3 = () => [inst('o1', 1), inst('o2', 1), inst('o3', 1)];
/** A new-version instance created at `createdAt`, running since `since` (null: not yet). */
const fresh = (id: string, createdAt: number, since: number | null, o: Partial<RolloutInstance> = {}) =>
  inst(id, 2, { createdAt, runningSince: since, state: since === null ? 'pending' : 'running', runningVersion: since === null ? null : 2, ...o });
const progressing: RolloutRecord = { stable: 1, from: 1, to: 2, state: 'progressing', reason: null, startedAt: T0 };

describe('stepRollout: a new version replaces replicas one at a time', () => {
  it('starts a rollout from the stable version and lets exactly one new instance in (the surge)', () => {
    const s = step({ instances: old3() });
    expect(s.record).toMatchObject({ from: 1, to: 2, state: 'progressing', startedAt: T0, stable: 1 });
    expect(s.notes.map((n) => n.action)).toEqual(['rollout.started']);
    expect(s.notes[0]!.reason).toContain('from version 1 to version 2');
    expect(s).toMatchObject({ target: 2, surge: 1, stop: [], tombstone: [] });
    expect(s.counted.map((i) => i.id)).toEqual(['o1', 'o2', 'o3']);
  });

  it('waits while the new instance is not running yet, keeping the surge slot but adding no second one', () => {
    const s = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 1_000, null)] });
    expect(s).toMatchObject({ surge: 1, stop: [], tombstone: [], notes: [] });
    expect(s.counted).toHaveLength(4); // placement at replicas + surge = 4: nothing to add
  });

  it('does not count a running instance before it has run for minReadyMs', () => {
    const s = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 3_000, T0 - 1_999)] });
    expect(s.stop).toEqual([]);
    const ready = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 3_000, T0 - 2_000)] });
    expect(ready.stop).toHaveLength(1);
  });

  it('with a health check, counts a new instance only once it reports healthy', () => {
    const base = (health: string) => [...old3(), fresh('n1', T0 - 5_000, T0 - 4_000, { health })];
    expect(step({ record: progressing, healthChecked: true, instances: base('starting') }).stop).toEqual([]);
    expect(step({ record: progressing, healthChecked: true, instances: base('none') }).stop).toEqual([]);
    expect(step({ record: progressing, healthChecked: true, instances: base('healthy') }).stop).toHaveLength(1);
    // Without a check in the spec, health is not looked at.
    expect(step({ record: progressing, healthChecked: false, instances: base('starting') }).stop).toHaveLength(1);
  });

  it('stops one old instance once the new one is ready, and no new surge until it is down', () => {
    const s = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 5_000, T0 - 4_000)] });
    expect(s.stop).toEqual(['o1']);
    expect(s.surge).toBe(0);
    expect(s.counted.map((i) => i.id).sort()).toEqual(['n1', 'o2', 'o3']);
    expect(s.notes[0]).toMatchObject({ action: 'rollout.progress', outcome: 'ok' });
    // Next step: o1 is stopping (desired stopped) but still running: wait, add nothing.
    const waiting = step({ record: progressing, instances: [inst('o1', 1, { desired: 'stopped' }), inst('o2', 1), inst('o3', 1), fresh('n1', T0 - 5_000, T0 - 4_000)] });
    expect(waiting).toMatchObject({ surge: 0, stop: [], tombstone: [] });
    // Its agent reported it exited: tombstone it and let the next new instance in.
    const next = step({ record: progressing, instances: [inst('o1', 1, { desired: 'stopped', state: 'exited' }), inst('o2', 1), inst('o3', 1), fresh('n1', T0 - 5_000, T0 - 4_000)] });
    expect(next).toMatchObject({ surge: 1, stop: [], tombstone: ['o1'] });
  });

  it('stops the old instance on the host this tool crowds most, keeping the spread', () => {
    const list = [inst('o1', 1, { hostId: 'ha' }), inst('o2', 1, { hostId: 'hb' }), inst('o3', 1, { hostId: 'hc' }), fresh('n1', T0 - 5_000, T0 - 4_000, { hostId: 'hb' })];
    expect(step({ record: progressing, instances: list }).stop).toEqual(['o2']);
  });

  it('completes when every replica runs the new version ready, and records it as stable', () => {
    const news = [fresh('n1', T0 - 9_000, T0 - 8_000), fresh('n2', T0 - 9_000, T0 - 8_000), fresh('n3', T0 - 9_000, T0 - 8_000)];
    // The last old one has just been reported down: tombstoned, then complete on the next step.
    const last = step({ record: progressing, instances: [inst('o3', 1, { desired: 'stopped', state: 'exited' }), ...news] });
    expect(last.tombstone).toEqual(['o3']);
    expect(last.record.state).toBe('progressing');
    const done = step({ record: progressing, instances: news });
    expect(done.record).toMatchObject({ state: 'complete', stable: 2, from: 1, to: 2 });
    expect(done.notes.map((n) => n.action)).toEqual(['rollout.complete']);
    expect(done).toMatchObject({ surge: 0, stop: [], tombstone: [] });
    // Complete stays complete: no new notes, nothing to do.
    const after = step({ record: done.record, instances: news });
    expect(after).toMatchObject({ surge: 0, stop: [], tombstone: [], notes: [], record: done.record });
  });

  it('keeps between replicas and replicas+1 instances counted at every step of a simulated rollout', () => {
    // Drives stepRollout + planTool like scheduler.ts does, with agents that report instantly.
    let record = stable(1);
    let list: RolloutInstance[] = old3();
    let now = T0;
    let nextId = 1;
    const hosts = ['h1', 'h2', 'h3'].map((id) => ({ id, status: 'ready', schedulable: true, labels: {}, load: 0 }));
    const counts: number[] = [];
    for (let i = 0; i < 40 && record.state !== 'complete'; i++) {
      const s = step({ record, instances: list, now });
      record = s.record;
      const plan = planTool({ replicas: 3 + s.surge, placementLabels: {}, instances: s.counted, hosts });
      const gone = new Set([...s.tombstone, ...plan.remove]);
      list = list.filter((x) => !gone.has(x.id)).map((x) => (s.stop.includes(x.id) ? { ...x, desired: 'stopped' as const } : x));
      for (const a of plan.add) list.push(fresh(`n${nextId++}`, now, null, { hostId: a.hostId }));
      counts.push(list.filter((x) => x.desired === 'running').length);
      // The agents act: new ones start, stopping ones stop.
      now += 1_000;
      list = list.map((x) => (x.state === 'pending' ? { ...x, state: 'running', runningVersion: x.version, runningSince: now } : x.desired === 'stopped' ? { ...x, state: 'exited' } : x));
    }
    expect(record).toMatchObject({ state: 'complete', stable: 2 });
    expect(list.every((x) => x.version === 2 && x.desired === 'running')).toBe(true);
    expect(list).toHaveLength(3);
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(3);
    expect(Math.max(...counts)).toBeLessThanOrEqual(4);
    expect(nextId - 1).toBe(3); // exactly one new instance per replica: none failed, none duplicated
  });
});

describe('stepRollout: automatic rollback', () => {
  const rolledBack = (s: RolloutStep) => {
    expect(s.record.state).toBe('rolled_back');
    expect(s.target).toBe(1);
    expect(s.notes).toHaveLength(1);
    expect(s.notes[0]).toMatchObject({ action: 'rollout.rolled_back', outcome: 'error' });
    return s.notes[0]!.reason;
  };

  it('rolls back when a new instance exits, keeping every old one and tombstoning the new', () => {
    const s = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 5_000, null, { state: 'failed', exitCode: 1 })] });
    expect(rolledBack(s)).toBe('version 2 failed: exited with code 1; rolled back to version 1');
    expect(s.tombstone).toEqual(['n1']);
    expect(s.stop).toEqual([]);
    expect(s.counted.map((i) => i.id)).toEqual(['o1', 'o2', 'o3']);
    expect(s.notes[0]!.data).toMatchObject({ from: 2, to: 1, instance: 'n1' });
  });

  it('rolls back on a restart or a crash loop even while the container runs again', () => {
    const restarted = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 5_000, T0 - 100, { restarts: 1, lastExitCode: 3 })] });
    expect(rolledBack(restarted)).toContain('exited with code 3 (restarted 1 time)');
    const looping = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 5_000, null, { state: 'failed', crashLoop: true, restarts: 2 })] });
    expect(rolledBack(looping)).toContain('crash-looping (restarted 2 times)');
  });

  it('rolls back when a new instance turns unhealthy', () => {
    const s = step({ record: progressing, healthChecked: true, instances: [...old3(), fresh('n1', T0 - 5_000, T0 - 4_000, { health: 'unhealthy' })] });
    expect(rolledBack(s)).toContain('health check failed');
  });

  it('rolls back when a new instance is not ready within the deadline', () => {
    const notYet = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 60_000, null, { reason: 'no host fits' })] });
    expect(notYet.record.state).toBe('progressing');
    const late = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 60_001, null, { reason: 'no host fits' })] });
    expect(rolledBack(late)).toBe('version 2 failed: not running within 60s (no host fits); rolled back to version 1');
    const unhealthyLate = step({ record: progressing, healthChecked: true, instances: [...old3(), fresh('n1', T0 - 60_001, T0 - 59_000, { health: 'starting' })] });
    expect(rolledBack(unhealthyLate)).toContain('not running and healthy within 60s (health starting)');
  });

  it('rolls back after some replicas were replaced: every new-version instance goes, placement refills at the old version', () => {
    const list = [inst('o1', 1, { desired: 'stopped', state: 'exited' }), inst('o2', 1), inst('o3', 1), fresh('n1', T0 - 9_000, T0 - 8_000), fresh('n2', T0 - 1_000, null, { state: 'failed', exitCode: 2 })];
    const s = step({ record: progressing, instances: list });
    rolledBack(s);
    expect(s.tombstone.sort()).toEqual(['n1', 'n2']);
    expect(s.counted.map((i) => i.id)).toEqual(['o2', 'o3']); // placement adds the third at version 1
    expect(s.surge).toBe(0);
  });

  it('holds the deployment at the good version after a rollback until the target moves', () => {
    const after: RolloutRecord = { ...progressing, state: 'rolled_back', reason: 'x' };
    expect(targetVersion(2, after)).toBe(1);
    const s = step({ record: after, instances: old3() });
    expect(s).toMatchObject({ target: 1, surge: 0, stop: [], tombstone: [], notes: [] });
    expect(s.record.state).toBe('rolled_back');
    // A newer version starts a new rollout from the good one.
    const v3 = step({ record: after, desiredVersion: 3, instances: old3() });
    expect(v3.record).toMatchObject({ from: 1, to: 3, state: 'progressing' });
    expect(v3.surge).toBe(1);
  });

  it('does not judge a new instance whose host is down (placement declares it lost)', () => {
    const s = step({ record: progressing, instances: [...old3(), fresh('n1', T0 - 90_000, null, { state: 'failed', exitCode: 1, hostUp: false })] });
    expect(s.record.state).toBe('progressing');
    expect(s.notes).toEqual([]);
    expect(s.counted.map((i) => i.id)).toContain('n1'); // still counted: placement marks it lost and replaces it
  });

  it('does not roll back a deployment that is not rolling (after completion a crash is left to the restart policy)', () => {
    const done: RolloutRecord = { ...progressing, state: 'complete', stable: 2 };
    const s = step({ record: done, instances: [fresh('n1', T0 - 9_000, null, { state: 'failed', exitCode: 1 }), fresh('n2', T0 - 9_000, T0 - 8_000), fresh('n3', T0 - 9_000, T0 - 8_000)] });
    expect(s.record.state).toBe('complete');
    expect(s.tombstone).toEqual([]);
  });
});

describe('stepRollout: versions and scaling', () => {
  it('tracks no rollout for a first deployment (nothing to return to)', () => {
    const s = step({ record: EMPTY_RECORD, desiredVersion: 1, instances: [] });
    expect(s.record).toEqual(EMPTY_RECORD);
    expect(s.notes).toEqual([]);
    expect(s.target).toBe(1);
  });

  it('follows a pinned version: pinning an older one rolls back to it one at a time', () => {
    const s = step({ record: stable(2), desiredVersion: 1, instances: [fresh('n1', 0, 1), fresh('n2', 0, 1), fresh('n3', 0, 1)] });
    expect(s.record).toMatchObject({ from: 2, to: 1, state: 'progressing' });
    expect(s).toMatchObject({ target: 1, surge: 1, stop: [] });
  });

  it('a newer version during a rollout retargets it, still from the stable version', () => {
    const s = step({ record: progressing, desiredVersion: 3, instances: [inst('o2', 1), inst('o3', 1), fresh('n1', 0, 1)] });
    expect(s.record).toMatchObject({ from: 1, to: 3, state: 'progressing' });
    expect(s.notes.map((n) => n.action)).toEqual(['rollout.started']);
  });

  it('scaling up during a rollout adds at the new version, never more than replicas + 1', () => {
    const s = step({ record: progressing, replicas: 5, instances: [inst('o2', 1), inst('o3', 1), fresh('n1', T0 - 9_000, T0 - 8_000)] });
    expect(s.target).toBe(2);
    expect(s.stop).toEqual([]);
    expect(s.surge).toBeLessThanOrEqual(1);
    const hosts = ['h1', 'h2', 'h3'].map((id) => ({ id, status: 'ready', schedulable: true, labels: {}, load: 0 }));
    const plan = planTool({ replicas: 5 + s.surge, placementLabels: {}, instances: s.counted, hosts });
    expect(s.counted.length + plan.add.length).toBeLessThanOrEqual(6);
    expect(s.counted.length + plan.add.length).toBeGreaterThanOrEqual(5);
  });

  it('scaling down during a rollout stops the surplus old instances first', () => {
    const s = step({ record: progressing, replicas: 1, instances: [inst('o2', 1), inst('o3', 1), fresh('n1', T0 - 9_000, T0 - 8_000)] });
    expect(s.stop.sort()).toEqual(['o2', 'o3']);
    expect(s.counted.map((i) => i.id)).toEqual(['n1']);
  });

  it('ends a rollout that was scaled to zero once its last instance is gone', () => {
    const stopping = step({ record: progressing, replicas: 0, instances: [inst('o1', 1, { desired: 'stopped' })] });
    expect(stopping.record.state).toBe('progressing');
    const gone = step({ record: progressing, replicas: 0, instances: [] });
    expect(gone.record).toMatchObject({ state: 'complete', stable: 1 });
    expect(gone.notes.map((n) => n.action)).toEqual(['rollout.complete']);
  });

  it('replaces an old instance that serves nothing at the new version rather than protecting it', () => {
    const s = step({ record: progressing, instances: [inst('o1', 1, { state: 'failed', exitCode: 1 }), inst('o2', 1), inst('o3', 1)] });
    expect(s.tombstone).toEqual(['o1']);
    expect(s.counted.map((i) => i.id)).toEqual(['o2', 'o3']);
  });

  it('is deterministic: equal inputs give equal steps', () => {
    const input = { record: progressing, instances: [...old3(), fresh('n1', T0 - 5_000, T0 - 4_000)] };
    expect(step(input)).toEqual(step(input));
  });
});

describe('policyFor: the deadline follows the health check', () => {
  const slow = { intervalSeconds: 10, timeoutSeconds: 5, retries: 3, startPeriodSeconds: 120 };

  it('gives a slow starter the time its own check needs before calling it failed', () => {
    // 120 s start period + 4 × (10 s + 5 s) + the 2 s minimum-ready time.
    expect(policyFor(POLICY, slow)).toEqual({ minReadyMs: 2_000, deadlineMs: 182_000 });
    // Still starting 100 s in: not failed. Past its own bound: failed, and the rollout rolls back.
    const starting = fresh('n1', T0, T0 - 1_000, { health: 'starting' });
    const at = (ms: number, policy = policyFor(POLICY, slow)) =>
      step({ record: progressing, instances: [...old3(), { ...starting, createdAt: T0 - ms }], healthChecked: true, policy }).record.state;
    expect(at(100_000)).toBe('progressing');
    expect(at(100_000, POLICY)).toBe('rolled_back');
    expect(at(190_000)).toBe('rolled_back');
  });

  it('keeps the default deadline for quick checks and for versions without one', () => {
    expect(policyFor(POLICY, { intervalSeconds: 2, timeoutSeconds: 1, retries: 3, startPeriodSeconds: 0 })).toBe(POLICY);
    expect(policyFor(POLICY)).toBe(POLICY);
  });
});
