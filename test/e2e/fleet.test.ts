import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type TestCluster, waitFor } from '../helpers/cluster.ts';
import { type FleetHost, startFleetCluster } from '../helpers/fleet.ts';

// Issue 5, the fleet: three hosts (three isolated dockerds, three agents) against one control
// plane on real PostgreSQL. Each agent reaches the control plane through a proxy the test can cut.
const GRACE_SECONDS = 2;
let cluster: TestCluster;
let fleet: FleetHost[] = [];
let closeFleet: () => Promise<void>;
const image = () => inject('testImage');
// Exits promptly on SIGTERM (tini forwards it), so stops never wait for the stop timeout.
const command = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
const CAPACITY = { cpus: 2, memoryMb: 2048 };

const byName = (name: string) => fleet.find((h) => h.opts.name === name)!;
const hostStatus = async (h: FleetHost) => (await cluster.api('GET', `/api/v1/hosts/${h.hostId}`)).body;
const deployment = async (tool: string) => (await cluster.api('GET', `/api/v1/tools/${tool}/deployment`)).body;
const instances = async (tool: string) => (await cluster.api('GET', `/api/v1/instances?tool=${tool}`)).body as any[];

/** Running containers of the tool on every engine, by host name. */
async function runningByHost(tool: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const h of fleet) out[h.opts.name] = (await h.running(tool)).length;
  return out;
}
const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

async function deploy(tool: string, replicas: number, extra: Record<string, unknown> = {}) {
  expect((await cluster.api('PUT', `/api/v1/tools/${tool}`, { image: image(), command, ...extra })).status).toBe(201);
  expect((await cluster.api('PUT', `/api/v1/tools/${tool}/deployment`, { replicas })).status).toBe(200);
}
async function remove(tool: string) {
  expect((await cluster.api('DELETE', `/api/v1/tools/${tool}`)).status).toBe(204);
  await waitFor(async () => total(await runningByHost(tool)) === 0, `${tool} gone from every engine`);
}
/** The API reports `n` running and exactly `n` containers run across the engines. */
async function converged(tool: string, n: number): Promise<Record<string, number>> {
  return waitFor(async () => {
    const d = await deployment(tool);
    const r = await runningByHost(tool);
    return d.running === n && d.instances.length === n && total(r) === n ? r : null;
  }, `${tool}: ${n} running, no duplicates`, 30_000);
}
const allReady = async () => {
  const hosts = (await cluster.api('GET', '/api/v1/hosts')).body as any[];
  return hosts.length === fleet.length && hosts.every((h) => h.status === 'ready');
};

beforeAll(async () => {
  ({ cluster, fleet, close: closeFleet } = await startFleetCluster({
    dockerSocket: inject('dockerSocket'),
    pgUrl: inject('pgUrl'),
    env: { MACHETE_HEARTBEAT_GRACE_SECONDS: String(GRACE_SECONDS), MACHETE_HEARTBEAT_MS: '500' },
    hosts: [
      { name: 'fleet-a', labels: { zone: 'a' }, capacity: CAPACITY },
      { name: 'fleet-b', labels: { zone: 'b', disk: 'ssd' }, capacity: CAPACITY },
      { name: 'fleet-c', labels: { zone: 'c' }, capacity: CAPACITY },
    ],
  }));
}, 120_000);

afterAll(() => closeFleet?.(), 60_000);

describe('the fleet: placement', () => {
  it('spreads 3 replicas one per host, and reports capacity and allocation per host', async () => {
    await deploy('spread', 3);
    expect(await converged('spread', 3)).toEqual({ 'fleet-a': 1, 'fleet-b': 1, 'fleet-c': 1 });
    const a = await hostStatus(byName('fleet-a'));
    expect(a).toMatchObject({ status: 'ready', capacity: CAPACITY, allocated: { cpus: 0.5, memoryMb: 256, instances: 1 } });
    await remove('spread');
  });

  it('treats placement labels as hard constraints', async () => {
    await deploy('ssd-only', 2, { placement: { labels: { disk: 'ssd' } } });
    expect(await converged('ssd-only', 2)).toEqual({ 'fleet-a': 0, 'fleet-b': 2, 'fleet-c': 0 });
    await deploy('nowhere', 1, { placement: { labels: { gpu: 'yes' } } });
    const [pending] = await instances('nowhere');
    expect(pending).toMatchObject({ state: 'pending', hostId: null });
    expect(pending.reason).toMatch(/no ready, schedulable host matches the placement labels \(gpu=yes\)/);
    await remove('ssd-only');
    await remove('nowhere');
  });

  it('counts reserved resources: what fits nowhere stays pending with the reason', async () => {
    // Too big for any host.
    await deploy('huge', 1, { resources: { cpus: 4, memoryMb: 256 } });
    const [huge] = await instances('huge');
    expect(huge).toMatchObject({ state: 'pending', hostId: null });
    expect(huge.reason).toMatch(/insufficient capacity: no eligible host has 4 CPU and 256 MB free \(3 eligible\)/);
    expect((await deployment('huge')).instances[0].reason).toBe(huge.reason);
    // 1.5 CPU each on 2-CPU hosts: one per host, the fourth waits.
    await deploy('wide', 4, { resources: { cpus: 1.5, memoryMb: 128 } });
    const placed = await waitFor(async () => {
      const r = await runningByHost('wide');
      return total(r) === 3 ? r : null;
    }, 'three wide replicas running');
    expect(placed).toEqual({ 'fleet-a': 1, 'fleet-b': 1, 'fleet-c': 1 });
    const waiting = (await instances('wide')).filter((i) => i.hostId === null);
    expect(waiting).toHaveLength(1);
    expect(waiting[0].reason).toMatch(/insufficient capacity.*most free on one host: 0.5 CPU/);
    // Room appears: the pending replica is placed.
    await remove('huge');
    expect((await cluster.api('PUT', '/api/v1/tools/wide/deployment', { replicas: 3 })).status).toBe(200);
    await converged('wide', 3);
    await remove('wide');
  });
});

describe('the fleet: failure detection', () => {
  it('replaces the replicas of a host cut off for longer than the grace period, and stops the extra copies when it returns', async () => {
    await deploy('loss', 3);
    await converged('loss', 3);
    const c = byName('fleet-c');
    const [lostInstance] = (await instances('loss')).filter((i) => i.hostId === c.hostId);
    await c.proxy.stop();
    await waitFor(async () => (await hostStatus(c)).status === 'down', 'fleet-c down', 15_000);
    // Placed elsewhere; the copy on the cut-off host keeps running meanwhile.
    const during = await waitFor(async () => {
      const r = await runningByHost('loss');
      return r['fleet-a']! + r['fleet-b']! === 3 ? r : null;
    }, 'replacement running on a or b');
    expect(during['fleet-c']).toBe(1);
    const listed = await instances('loss');
    expect(listed.find((i) => i.id === lostInstance.id)).toMatchObject({ state: 'lost', hostId: c.hostId });
    expect((await deployment('loss')).running).toBe(3);
    const events = (await cluster.api('GET', '/api/v1/events?limit=200')).body as any[];
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['host.down', 'replicas.lost', 'replicas.replaced']));

    await c.proxy.start();
    await waitFor(async () => (await hostStatus(c)).status === 'ready', 'fleet-c ready again');
    const after = await converged('loss', 3);
    expect(after['fleet-c']).toBe(0);
    expect((await instances('loss')).some((i) => i.state === 'lost')).toBe(false);
    await remove('loss');
  }, 60_000);

  it('replaces the replicas of a host whose agent stopped, and the restarted agent stops the old copies', async () => {
    await deploy('agentloss', 3);
    await converged('agentloss', 3);
    const b = byName('fleet-b');
    await b.stopAgent();
    await waitFor(async () => (await hostStatus(b)).status === 'down', 'fleet-b down', 15_000);
    const during = await waitFor(async () => {
      const r = await runningByHost('agentloss');
      return r['fleet-a']! + r['fleet-c']! === 3 ? r : null;
    }, 'replacement running on a or c');
    expect(during['fleet-b']).toBe(1); // the engine keeps it while no agent runs
    await b.startAgent();
    await waitFor(allReady, 'fleet-b ready again');
    expect((await converged('agentloss', 3))['fleet-b']).toBe(0);
    await remove('agentloss');
  }, 60_000);
});

describe('the fleet: cordon and drain', () => {
  it('schedulable: false stops new placements without moving anything', async () => {
    const a = byName('fleet-a');
    expect((await cluster.api('PATCH', `/api/v1/hosts/${a.hostId}`, { schedulable: false })).body).toMatchObject({ schedulable: false, status: 'ready' });
    await deploy('cordon', 4);
    expect((await converged('cordon', 4))['fleet-a']).toBe(0);
    expect((await cluster.api('PATCH', `/api/v1/hosts/${a.hostId}`, { schedulable: true })).body).toMatchObject({ schedulable: true });
    await remove('cordon');
  });

  it('drain starts replacements elsewhere before stopping the originals', async () => {
    const a = byName('fleet-a');
    await deploy('drainme', 3);
    expect((await converged('drainme', 3))['fleet-a']).toBe(1);
    // Sample the engines while the drain runs: never fewer than 3 running.
    let sampling = true;
    let fewest = Infinity;
    const sampler = (async () => {
      while (sampling) {
        fewest = Math.min(fewest, total(await runningByHost('drainme')));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const res = await cluster.api('POST', `/api/v1/hosts/${a.hostId}/drain`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'draining', schedulable: false });
    const after = await converged('drainme', 3);
    sampling = false;
    await sampler;
    expect(after['fleet-a']).toBe(0);
    expect(fewest).toBeGreaterThanOrEqual(3);
    const events = (await waitFor(async () => {
      const list = (await cluster.api('GET', '/api/v1/events?limit=200')).body as any[];
      return list.some((e) => e.action === 'host.drained' && e.target === a.hostId) ? list : null;
    }, 'host.drained event')).filter((e) => e.target === a.hostId || e.target === 'drainme');
    const order = ['host.draining', 'replicas.replaced', 'drain.originals.removed', 'host.drained'].map((act) => events.findIndex((e) => e.action === act));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect((await hostStatus(a)).status).toBe('draining');
    await remove('drainme');
  }, 60_000);
});
