import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshPostgresDatabase, TestCluster, waitFor } from '../helpers/cluster.ts';

// The core loop of issue 2, end to end: real PostgreSQL, real WebSocket, real dockerd.
let cluster: TestCluster;
let dropDb: () => Promise<void>;
const image = () => inject('testImage');
const TOOL = 'e2e-sleeper';

async function deployment() {
  return (await cluster.api('GET', `/api/v1/tools/${TOOL}/deployment`)).body;
}
async function running(): Promise<Map<string, { id: string; version: string; startedAt?: string }>> {
  const list = await cluster.containers(false);
  return new Map(list.filter((c) => c.State === 'running').map((c) => [c.Labels['machete.instance']!, { id: c.Id, version: c.Labels['machete.version']! }]));
}
/** Converged: N running containers, the API agrees, every replica at `version`. */
async function converged(n: number, version: number) {
  return waitFor(async () => {
    const d = await deployment();
    const r = await running();
    const all = await cluster.containers(true);
    const ok =
      d.running === n &&
      d.instances.length === n &&
      r.size === n &&
      all.length === n &&
      [...r.values()].every((c) => c.version === String(version)) &&
      d.instances.every((i: any) => r.get(i.id)?.id === i.containerId);
    return ok ? r : null;
  }, `${n} replicas at version ${version}`);
}

beforeAll(async () => {
  const db = await freshPostgresDatabase(inject('pgUrl'));
  dropDb = db.drop;
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket'), databaseUrl: db.url });
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
});
afterAll(async () => {
  await cluster?.close();
  await dropDb?.();
});

describe('core loop on a real engine', () => {
  it('runs 3 replicas with the labels and secure defaults', async () => {
    expect((await cluster.api('PUT', `/api/v1/tools/${TOOL}`, { image: image(), command: ['sleep', '3600'] })).status).toBe(201);
    expect((await cluster.api('PUT', `/api/v1/tools/${TOOL}/deployment`, { replicas: 3 })).status).toBe(200);
    const r = await converged(3, 1);
    const hostId = cluster.agent!.hostId;
    for (const [instanceId, c] of r) {
      const info = await cluster.docker.getContainer(c.id).inspect();
      expect(info.Config.Labels).toMatchObject({
        'machete.managed': 'true',
        'machete.tool': TOOL,
        'machete.instance': instanceId,
        'machete.host': hostId,
        'machete.kind': 'replica',
      });
      expect(Number(info.Config.Labels['machete.revision'])).toBeGreaterThan(0);
      const hc = info.HostConfig;
      expect(hc.CapDrop).toEqual(['ALL']);
      expect(hc.SecurityOpt).toEqual(expect.arrayContaining([expect.stringMatching(/^no-new-privileges/)]));
      expect(hc.Privileged).toBe(false);
      expect(hc.ReadonlyRootfs).toBe(true);
      expect(hc.Tmpfs).toHaveProperty('/tmp');
      expect(hc.Memory).toBe(256 * 1024 * 1024);
      expect(hc.NanoCpus).toBe(500_000_000);
      expect(hc.PidsLimit).toBe(128);
      expect(hc.NetworkMode).toBe('none');
      expect(hc.LogConfig?.Config).toHaveProperty('max-size');
      expect(hc.Binds ?? []).toEqual([]);
      expect(info.Config.User).toBe('65534:65534');
    }
  });

  it('replaces a container killed by hand', async () => {
    const before = await running();
    const [victimInstance, victim] = [...before.entries()][0]!;
    await cluster.docker.getContainer(victim.id).kill();
    const after = await waitFor(async () => {
      const r = await running();
      return r.size === 3 && r.get(victimInstance) && r.get(victimInstance)!.id !== victim.id ? r : null;
    }, 'replacement of the killed container');
    expect(after.get(victimInstance)!.id).not.toBe(victim.id);
    const inst = (await deployment()).instances.find((i: any) => i.id === victimInstance);
    expect(inst.restarts).toBeGreaterThanOrEqual(1);
    // The other two were not touched.
    for (const [id, c] of before) if (id !== victimInstance) expect(after.get(id)!.id).toBe(c.id);
  });

  it('replaces a container removed by hand', async () => {
    const [instanceId, c] = [...(await running()).entries()][1]!;
    await cluster.docker.getContainer(c.id).remove({ force: true });
    await waitFor(async () => {
      const r = await running();
      return r.size === 3 && r.get(instanceId) && r.get(instanceId)!.id !== c.id;
    }, 'replacement of the removed container');
    await converged(3, 1);
  });

  it('rolls the replicas to a new version when the spec changes', async () => {
    const old = await running();
    const put = await cluster.api('PUT', `/api/v1/tools/${TOOL}`, { image: image(), command: ['sleep', '3601'] });
    expect(put.body.version).toBe(2);
    const r = await converged(3, 2);
    for (const c of r.values()) {
      expect([...old.values()].map((o) => o.id)).not.toContain(c.id);
      const info = await cluster.docker.getContainer(c.id).inspect();
      expect(info.Config.Cmd).toEqual(['sleep', '3601']);
    }
  });

  it('removes the surplus when scaled down', async () => {
    const before = await running();
    await cluster.api('PUT', `/api/v1/tools/${TOOL}/deployment`, { replicas: 1 });
    const r = await converged(1, 2);
    expect(before.get([...r.keys()][0]!)?.id).toBe([...r.values()][0]!.id);
  });

  it('refuses a mount outside the agent allowlist and reports why', async () => {
    await cluster.api('PUT', '/api/v1/tools/e2e-mount', { image: image(), command: ['sleep', '3600'], mounts: [{ source: '/srv/data', target: '/data' }] });
    await cluster.api('PUT', '/api/v1/tools/e2e-mount/deployment', { replicas: 1 });
    const inst = await waitFor(async () => {
      const d = (await cluster.api('GET', '/api/v1/tools/e2e-mount/deployment')).body;
      return d.instances.find((i: any) => i.state === 'failed' && i.reason);
    }, 'refused mount reported');
    expect(inst.reason).toMatch(/allow/i);
    expect((await cluster.containers()).some((c) => c.Labels['machete.tool'] === 'e2e-mount')).toBe(false);
    expect((await cluster.api('DELETE', '/api/v1/tools/e2e-mount')).status).toBe(204);
  });

  it('leaves running containers untouched across an agent restart', async () => {
    await cluster.api('PUT', `/api/v1/tools/${TOOL}/deployment`, { replicas: 2 });
    const before = await converged(2, 2);
    const started = await startTimes(before);
    await cluster.stopAgent();
    await cluster.startAgent();
    await waitFor(async () => cluster.agent!.reconciler.passes() >= 2, 'agent passes after restart');
    await new Promise((r) => setTimeout(r, 1500));
    const after = await converged(2, 2);
    expect(idsOf(after)).toEqual(idsOf(before));
    expect(await startTimes(after)).toEqual(started);
  });

  it('leaves running containers untouched across a control-plane restart', async () => {
    const before = await running();
    const started = await startTimes(before);
    await cluster.stopServer();
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.startServer();
    await waitFor(async () => cluster.agent!.connection.connected && cluster.server!.hub.connectedHosts().size === 1, 'agent reconnected');
    await new Promise((r) => setTimeout(r, 1500));
    const after = await converged(2, 2);
    expect(idsOf(after)).toEqual(idsOf(before));
    expect(await startTimes(after)).toEqual(started);
  });

  it('removes nothing while an agent restarted without a control plane has no desired state', async () => {
    const before = await running();
    await cluster.stopAgent();
    await cluster.stopServer();
    await cluster.startAgent(); // the server is down: no desired state yet
    await new Promise((r) => setTimeout(r, 2500));
    expect(idsOf(await running())).toEqual(idsOf(before));
    await cluster.startServer();
    const after = await converged(2, 2);
    expect(idsOf(after)).toEqual(idsOf(before));
  });

  it('removes every container when the tool is deleted', async () => {
    expect((await cluster.api('DELETE', `/api/v1/tools/${TOOL}`)).status).toBe(204);
    await waitFor(async () => (await cluster.containers(true)).length === 0, 'all containers removed');
    expect((await cluster.api('GET', `/api/v1/instances?tool=${TOOL}`)).body).toEqual([]);
  });
});

const idsOf = (m: Map<string, { id: string }>) => [...m.entries()].map(([k, v]) => `${k}=${v.id}`).sort();
async function startTimes(m: Map<string, { id: string }>) {
  const out: Record<string, string> = {};
  for (const c of m.values()) out[c.id] = (await cluster.docker.getContainer(c.id).inspect()).State.StartedAt;
  return out;
}
