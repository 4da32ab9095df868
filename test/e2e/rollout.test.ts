import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type TestCluster, waitFor } from '../helpers/cluster.ts';
import { type FleetHost, startFleetCluster } from '../helpers/fleet.ts';

// Issue 5, updates and restarts: three hosts (three isolated dockerds, three agents) against one
// control plane on real PostgreSQL. Rolling updates one replica at a time, automatic rollback of
// a version that fails, and crash-loop backoff reported through the API.
let cluster: TestCluster;
let fleet: FleetHost[] = [];
let closeFleet: () => Promise<void>;
const image = () => inject('testImage');
// Exits promptly on SIGTERM (tini forwards it), so stops never wait for the stop timeout.
const loop = 'trap "exit 0" TERM; while true; do sleep 1; done';
const REPLICAS = 3;

interface Sample {
  running: number;
  /** Running containers an operator can rely on: the old version, or the new one once healthy. */
  serving: number;
  byVersion: Record<string, number>;
  unhealthyNew: number;
}

async function containers(tool: string): Promise<Docker.ContainerInfo[]> {
  const lists = await Promise.all(fleet.map((h) => h.running(tool)));
  return lists.flat();
}
const version = (c: Docker.ContainerInfo) => Number(c.Labels['machete.version']);
const healthy = (c: Docker.ContainerInfo) => /\(healthy\)/.test(c.Status);

async function sample(tool: string, newVersion: number, healthChecked: boolean): Promise<Sample> {
  const list = await containers(tool);
  const byVersion: Record<string, number> = {};
  for (const c of list) byVersion[version(c)] = (byVersion[version(c)] ?? 0) + 1;
  const isNew = (c: Docker.ContainerInfo) => version(c) === newVersion;
  return {
    running: list.length,
    serving: list.filter((c) => !isNew(c) || !healthChecked || healthy(c)).length,
    byVersion,
    unhealthyNew: list.filter((c) => isNew(c) && healthChecked && !healthy(c)).length,
  };
}
const deployment = async (tool: string) => (await cluster.api('GET', `/api/v1/tools/${tool}/deployment`)).body;
const events = async (tool: string, action: string) =>
  ((await cluster.api('GET', '/api/v1/events?limit=1000')).body as any[]).filter((e) => e.target === tool && e.action === action);
const putTool = async (tool: string, spec: Record<string, unknown>) => {
  const res = await cluster.api('PUT', `/api/v1/tools/${tool}`, { image: image(), ...spec });
  expect([200, 201]).toContain(res.status);
  return res.body.version as number;
};
/** Every replica runs `v` (the API and the engines agree), and the deployment says so. */
async function settledAt(tool: string, v: number, timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const d = await deployment(tool);
      const list = await containers(tool);
      const ok = d.running === REPLICAS && d.instances.length === REPLICAS && d.instances.every((i: any) => i.version === v) && list.length === REPLICAS && list.every((c) => version(c) === v);
      return ok ? { d, list } : null;
    },
    `${tool}: ${REPLICAS} replicas at version ${v}`,
    timeoutMs,
    200,
  );
}

beforeAll(async () => {
  ({ cluster, fleet, close: closeFleet } = await startFleetCluster({
    dockerSocket: inject('dockerSocket'),
    pgUrl: inject('pgUrl'),
    env: { MACHETE_HEARTBEAT_MS: '500' },
    hosts: ['roll-a', 'roll-b', 'roll-c'].map((name) => ({ name, labels: { zone: name }, capacity: { cpus: 4, memoryMb: 4096 } })),
  }));
}, 120_000);

afterAll(() => closeFleet?.(), 60_000);

describe('rolling updates on three engines', () => {
  it('replaces replicas one at a time, counting a new one only once healthy, and ends with all on the new version', async () => {
    const tool = 'roll';
    const v1 = await putTool(tool, { command: ['sh', '-c', loop], env: { V: '1' } });
    expect((await cluster.api('PUT', `/api/v1/tools/${tool}/deployment`, { replicas: REPLICAS })).status).toBe(200);
    const before = await settledAt(tool, v1);
    // Spread one per host, and settled: the deployment knows v1 as its stable version.
    expect(new Set(before.d.instances.map((i: any) => i.hostId)).size).toBe(3);
    await waitFor(async () => (await deployment(tool)).rollout?.stableVersion === v1, 'v1 stable');

    // v2 becomes healthy only ~3 s after it starts: the rollout must wait for it each time.
    const v2 = await putTool(tool, {
      command: ['sh', '-c', `sleep 3; touch /tmp/ok; ${loop}`],
      env: { V: '2' },
      healthCheck: { command: ['sh', '-c', 'test -f /tmp/ok'], intervalSeconds: 1, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 20 },
    });
    expect(v2).toBe(v1 + 1);
    const samples: Sample[] = [];
    const rollout = waitFor(
      async () => {
        samples.push(await sample(tool, v2, true));
        const d = await deployment(tool);
        return d.rollout?.state === 'complete' ? d : null;
      },
      'rollout complete',
      90_000,
      150,
    );
    const done = await rollout;
    expect(done.rollout).toMatchObject({ state: 'complete', from: v1, to: v2, stableVersion: v2, reason: null });
    const after = await settledAt(tool, v2);
    expect(after.list.every(healthy)).toBe(true);

    // At every sample: between replicas and replicas + 1 containers ran, and at least `replicas`
    // of them served (old ones, or new ones already healthy).
    expect(samples.length).toBeGreaterThan(20);
    for (const s of samples) {
      expect(s.running, JSON.stringify(s)).toBeGreaterThanOrEqual(REPLICAS);
      expect(s.running, JSON.stringify(s)).toBeLessThanOrEqual(REPLICAS + 1);
      expect(s.serving, JSON.stringify(s)).toBeGreaterThanOrEqual(REPLICAS);
    }
    // The wait was real: new containers were seen running but not yet healthy, one at a time.
    expect(samples.some((s) => s.unhealthyNew === 1)).toBe(true);
    expect(Math.max(...samples.map((s) => s.unhealthyNew))).toBe(1);
    // The versions changed over gradually: mixed samples with 1 and 2 new ones were seen.
    expect(samples.some((s) => s.byVersion[v1] === 2 && (s.byVersion[v2] ?? 0) >= 1)).toBe(true);
    expect(samples.some((s) => s.byVersion[v1] === 1 && (s.byVersion[v2] ?? 0) >= 2)).toBe(true);
    const started = await events(tool, 'rollout.started');
    expect(started.at(-1)).toMatchObject({ kind: 'lifecycle', outcome: 'ok', data: { from: v1, to: v2 } });
    expect((await events(tool, 'rollout.complete')).length).toBe(1);
  }, 180_000);

  it('rolls a version that exits back to the last good one, never touching the old replicas, and says why', async () => {
    const tool = 'roll';
    const good = await settledAt(tool, 2);
    const oldIds = good.list.map((c) => c.Id).sort();
    // It fails at once: one that ran a while first could outlive the 2 s minimum-ready time on a
    // loaded machine (its exit reported late) and rightly be let replace an old replica first.
    const v3 = await putTool(tool, { command: ['sh', '-c', 'exit 1'], env: { V: '3' } });
    expect(v3).toBe(3);
    const samples: Sample[] = [];
    const rolled = await waitFor(
      async () => {
        samples.push(await sample(tool, v3, false));
        const e = await events(tool, 'rollout.rolled_back');
        return e.length ? e : null;
      },
      'rollback event',
      60_000,
      150,
    );
    expect(rolled).toHaveLength(1);
    expect(rolled[0]).toMatchObject({ kind: 'lifecycle', actor: 'scheduler', outcome: 'error', data: { from: 3, to: 2 } });
    expect(rolled[0].reason).toMatch(/^version 3 failed: exited with code 1.*; rolled back to version 2$/);

    const back = await settledAt(tool, 2);
    // The old replicas were never stopped: the very same containers still run.
    expect(back.list.map((c) => c.Id).sort()).toEqual(oldIds);
    const d = await deployment(tool);
    expect(d.rollout).toMatchObject({ state: 'rolled_back', from: 2, to: 3, stableVersion: 2 });
    expect(d.rollout.reason).toBe(rolled[0].reason);
    expect(samples.every((s) => s.running <= REPLICAS + 1)).toBe(true);
    // It stays rolled back (the deployment holds at version 2 until a new version comes).
    await new Promise((r) => setTimeout(r, 3_000));
    const still = await settledAt(tool, 2, 5_000);
    expect(still.list.map((c) => c.Id).sort()).toEqual(oldIds);
    expect((await events(tool, 'rollout.rolled_back')).length).toBe(1);
  }, 120_000);

  it('rolls back a version whose health check fails', async () => {
    const tool = 'roll';
    const good = await settledAt(tool, 2);
    const oldIds = good.list.map((c) => c.Id).sort();
    const v4 = await putTool(tool, { command: ['sh', '-c', loop], env: { V: '4' }, healthCheck: { command: ['sh', '-c', 'exit 1'], intervalSeconds: 1, timeoutSeconds: 1, retries: 2 } });
    expect(v4).toBe(4);
    const rolled = await waitFor(async () => {
      const e = await events(tool, 'rollout.rolled_back');
      return e.some((x) => x.data?.from === 4) ? e.filter((x) => x.data?.from === 4) : null;
    }, 'rollback of the unhealthy version', 60_000, 200);
    expect(rolled[0].reason).toBe('version 4 failed: health check failed (unhealthy); rolled back to version 2');
    const back = await settledAt(tool, 2);
    expect(back.list.map((c) => c.Id).sort()).toEqual(oldIds);
  }, 120_000);
});

describe('restart policy on-failure', () => {
  it('restarts a failing tool with a growing backoff and reports the crash loop in the API', async () => {
    const tool = 'crashy';
    await putTool(tool, { command: ['sh', '-c', 'exit 3'], restart: 'on-failure' });
    expect((await cluster.api('PUT', `/api/v1/tools/${tool}/deployment`, { replicas: 1 })).status).toBe(200);
    const seen: Array<{ restarts: number; backoffSeconds: number | null; crashLoop: boolean }> = [];
    const last = await waitFor(
      async () => {
        const [i] = (await cluster.api('GET', `/api/v1/instances?tool=${tool}`)).body as any[];
        if (i) seen.push({ restarts: i.restarts, backoffSeconds: i.backoffSeconds, crashLoop: i.crashLoop });
        return i?.crashLoop && i.backoffSeconds >= 4 ? i : null;
      },
      'a crash loop with a 4 s backoff',
      60_000,
      200,
    );
    expect(last).toMatchObject({ crashLoop: true, lastExitCode: 3 });
    expect(last.restarts).toBeGreaterThanOrEqual(3);
    expect(['failed', 'starting', 'running']).toContain(last.state);
    // The backoff grew: 1 s, then 2 s, then 4 s, never shrinking while it loops.
    const backoffs = [...new Set(seen.map((s) => s.backoffSeconds).filter((b): b is number => b !== null))];
    expect(backoffs.slice(0, 3)).toEqual([1, 2, 4]);
    // Restarts were spaced by the backoff, not immediate: a 3-restart loop took at least 1 + 2 s.
    const restarts = seen.map((s) => s.restarts);
    expect(restarts).toEqual([...restarts].sort((a, b) => a - b));
    // The deployment route shows the same state.
    const d = await deployment(tool);
    expect(d.instances[0]).toMatchObject({ crashLoop: true, lastExitCode: 3 });
    expect(d.instances[0].restarts).toBeGreaterThanOrEqual(3);
    expect((await cluster.api('DELETE', `/api/v1/tools/${tool}`)).status).toBe(204);
  }, 90_000);
});
