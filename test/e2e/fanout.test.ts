import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ServerFrame } from '../../protocol/src/index.ts';
import { freshPostgresDatabase, TestCluster, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// A change touching many hosts is pushed with shared delta queries (hub push/syncBatch):
// every host still gets exactly its own upserts and tombstones, in revision order.
const HOSTS = 24;
let cluster: TestCluster;
let dropDb: () => Promise<void>;
const agents: { hostId: string; agent: FakeAgent }[] = [];

beforeAll(async () => {
  const db = await freshPostgresDatabase(inject('pgUrl'));
  dropDb = db.drop;
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket'), databaseUrl: db.url });
  await cluster.startServer();
  for (let i = 0; i < HOSTS; i++) {
    const host = await enrollFake(cluster, `fan${i}`);
    const agent = await FakeAgent.connect(cluster, host.token);
    agent.hello();
    await agent.next('snapshot');
    agents.push({ hostId: host.hostId, agent });
  }
  await waitFor(async () => ((await cluster.api('GET', '/api/v1/hosts')).body as any[]).every((h) => h.status === 'ready'), 'hosts ready');
});
afterAll(async () => {
  agents.forEach((a) => a.agent.ws.close());
  await cluster?.close();
  await dropDb?.();
});

const deltas = (a: FakeAgent) => a.frames.filter((f): f is Extract<ServerFrame, { type: 'delta' }> => f.type === 'delta');

describe('fleet-wide change', () => {
  it('gives every host its own replica, then its own tombstone, as contiguous deltas', async () => {
    expect((await cluster.api('PUT', '/api/v1/tools/fan', { image: 'machete/busybox:test' })).status).toBe(201);
    expect((await cluster.api('PUT', '/api/v1/tools/fan/deployment', { replicas: HOSTS })).status).toBe(200);
    await waitFor(async () => agents.every((a) => deltas(a.agent).some((d) => d.upserts.length)), 'every host got its replica', 10_000, 20);
    const instances = (await cluster.api('GET', '/api/v1/instances?tool=fan')).body as any[];
    for (const { hostId, agent } of agents) {
      const got = deltas(agent).flatMap((d) => d.upserts);
      expect(got).toHaveLength(1);
      expect(instances.find((i) => i.id === got[0]!.id)?.hostId).toBe(hostId);
    }
    expect((await cluster.api('PUT', '/api/v1/tools/fan/deployment', { replicas: 0 })).status).toBe(200);
    await waitFor(async () => agents.every((a) => deltas(a.agent).some((d) => d.removes.length)), 'every host got its tombstone', 10_000, 20);
    for (const { agent } of agents) {
      const ds = deltas(agent);
      const upserted = ds.flatMap((d) => d.upserts.map((u) => u.id));
      expect(ds.flatMap((d) => d.removes)).toEqual(upserted);
      // Each delta starts where the previous one ended.
      for (let i = 1; i < ds.length; i++) expect(ds[i]!.fromRevision).toBe(ds[i - 1]!.revision);
    }
  });
});
