import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// The agent channel over a real WebSocket, with a hand-driven agent (no engine needed).
let cluster: TestCluster;
const WS = () => `${cluster.url.replace('http', 'ws')}/api/v1/agent/connect`;
const enroll = (name: string) => enrollFake(cluster, name);

async function upgradeStatus(headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(WS(), { headers });
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => (ws.close(), resolve(101)));
    ws.on('error', () => {});
  });
}

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: '/nonexistent' });
  await cluster.startServer();
});
afterAll(() => cluster?.close());

describe('agent channel', () => {
  it('refuses an upgrade without a token, with a user token, or with a browser Origin', async () => {
    const a = await enroll('auth-test');
    expect(await upgradeStatus({})).toBe(401);
    const user = (await cluster.server!.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 60 })).token;
    expect(await upgradeStatus({ authorization: `Bearer ${user}` })).toBe(401);
    expect(await upgradeStatus({ authorization: `Bearer ${a.token}`, origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus({ authorization: `Bearer ${a.token}` })).toBe(101);
    const ev = await cluster.api('GET', '/api/v1/events?limit=50');
    expect(ev.body.filter((e: any) => e.action === 'agent.connect' && e.outcome === 'refused').length).toBeGreaterThanOrEqual(3);
  });

  it('answers hello with welcome and a snapshot of the host desired state', async () => {
    const a = await enroll('snap');
    await cluster.api('PUT', '/api/v1/tools/chan', { image: 'machete/busybox:test', command: ['sleep', '1'], placement: { labels: { role: 'snap' } } });
    const agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    expect((await agent.next('welcome')).hostId).toBe(a.hostId);
    expect((await agent.next('snapshot')).instances).toEqual([]);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${a.hostId}`)).body.status === 'ready', 'ready');
    await cluster.api('PUT', '/api/v1/tools/chan/deployment', { replicas: 1 });
    const delta = await agent.next('delta');
    expect(delta.upserts).toHaveLength(1);
    expect(delta.upserts[0]).toMatchObject({ tool: 'chan', desired: 'running', kind: 'replica' });
    agent.ws.close();
    await cluster.api('PUT', '/api/v1/tools/chan/deployment', { replicas: 0 });
  });

  it('refuses bad frames without dropping the server', async () => {
    const a = await enroll('bad-frames');
    const agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    await agent.next('snapshot');
    agent.send('not json');
    agent.send({ type: 'launch', image: 'x' });
    agent.send({ type: 'status', seq: 'x' });
    await waitFor(async () => agent.frames.filter((f) => f.type === 'error').length === 3, '3 error frames', 5000, 10);
    expect((await cluster.api('GET', '/api/health')).status).toBe(200);
    agent.ws.close();
  });

  it('applies status reports in sequence order and ignores replays', async () => {
    const a = await enroll('seq');
    await cluster.api('PUT', '/api/v1/tools/seqtool', { image: 'machete/busybox:test', placement: { labels: { role: 'seq' } } });
    const agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    await agent.next('snapshot');
    await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${a.hostId}`)).body.status === 'ready', 'ready');
    await cluster.api('PUT', '/api/v1/tools/seqtool/deployment', { replicas: 1 });
    const mine = await waitFor(async () => (await cluster.api('GET', `/api/v1/instances?tool=seqtool&host=${a.hostId}`)).body[0], 'an instance on this host');
    const st = (state: string, seq: number) => ({ type: 'status', seq, revision: 1, instances: [{ id: mine.id, state, containerId: 'c1', exitCode: null, restarts: 0, reason: null, version: 1 }] });
    agent.send(st('running', 5));
    await waitFor(async () => (await cluster.api('GET', `/api/v1/instances?tool=seqtool&host=${a.hostId}`)).body[0].state === 'running', 'running');
    agent.send(st('failed', 3)); // replayed, older
    agent.send({ type: 'heartbeat', at: Date.now() });
    await new Promise((r) => setTimeout(r, 300));
    expect((await cluster.api('GET', `/api/v1/instances?tool=seqtool&host=${a.hostId}`)).body[0].state).toBe('running');
    agent.ws.close();
  });

  it('refuses and audits reports about instances placed on another host', async () => {
    const a = await enroll('liar');
    const agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    await agent.next('snapshot');
    const other = (await cluster.api('GET', '/api/v1/instances?tool=seqtool')).body.find((i: any) => i.hostId !== a.hostId);
    expect(other).toBeTruthy();
    const before = other.state;
    agent.send({ type: 'status', seq: 1, revision: 1, instances: [{ id: other.id, state: 'failed', containerId: null, exitCode: 1, restarts: 0, reason: 'lies', version: 1 }] });
    await waitFor(async () => (await cluster.api('GET', '/api/v1/events?limit=20')).body.find((e: any) => e.action === 'agent.status' && e.outcome === 'refused' && e.actor === `host:${a.hostId}`), 'audit event');
    expect((await cluster.api('GET', '/api/v1/instances?tool=seqtool')).body.find((i: any) => i.id === other.id).state).toBe(before);
    agent.ws.close();
  });

  it('keeps the newer of two connections for one host', async () => {
    const a = await enroll('twin');
    const first = await FakeAgent.connect(cluster, a.token);
    first.hello();
    await first.next('snapshot');
    const second = await FakeAgent.connect(cluster, a.token);
    second.hello();
    await second.next('snapshot');
    await waitFor(async () => first.closed, 'first closed');
    expect(first.closed!.code).toBe(4001);
    expect(second.closed).toBeNull();
    second.ws.close();
  });

  it('resumes with a delta from the revision the agent last applied', async () => {
    const a = await enroll('resume');
    const agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    const snap = await agent.next('snapshot');
    agent.ws.close();
    const again = await FakeAgent.connect(cluster, a.token);
    again.hello(snap.revision);
    const delta = await again.next('delta');
    expect(delta.fromRevision).toBe(snap.revision);
    expect(again.frames.some((f) => f.type === 'snapshot')).toBe(false);
    again.ws.close();
  });
});
