import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { enroll, eventMark, FakeAgent, refusalsSince } from './helpers.ts';

// Cases 46 and 47: agents that stop answering pings, and agents that never read.
// Each needs its own control plane: a short heartbeat for the first, a long one and
// a small send-buffer cap for the second (so the ping check cannot close it first).
const wsUrl = (c: TestCluster) => `${c.url.replace('http', 'ws')}/api/v1/agent/connect`;

describe('an agent that stops answering pings (case 46)', () => {
  const HEARTBEAT_MS = 300;
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = new TestCluster({ dockerSocket: '/nonexistent', env: { MACHETE_HEARTBEAT_MS: String(HEARTBEAT_MS), MACHETE_HEARTBEAT_GRACE_SECONDS: '1' } });
    await cluster.startServer();
  });
  afterAll(() => cluster?.close());

  it('is closed within two heartbeat intervals and its host is marked down after the grace period', async () => {
    const a = await enroll(cluster.url, await cluster.server!.mintJoinToken(), 'mute46');
    const mark = await eventMark(cluster.server!.deps.events);
    const agent = await FakeAgent.connect(wsUrl(cluster), a.token, { autoPong: false });
    const opened = Date.now();
    agent.hello();
    await agent.next('snapshot');
    await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${a.hostId}`)).body.status === 'ready', 'host ready');
    const closed = await agent.waitClosed(4 * HEARTBEAT_MS);
    // Connected (hence alive) at `opened`; pinged at 1 interval; terminated at the 2nd.
    expect(closed.at - opened).toBeLessThan(2 * HEARTBEAT_MS + 250);
    expect(cluster.server!.hub.connectedHosts().has(a.hostId)).toBe(false);
    expect(await refusalsSince(cluster.server!.deps.events, mark, (e) => e.actor === `host:${a.hostId}` && /no pong/.test(e.reason ?? ''))).toBe(1);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${a.hostId}`)).body.status === 'down', 'host down', 15_000, 200);
  }, 30_000);

  it('keeps an agent that answers pings', async () => {
    const a = await enroll(cluster.url, await cluster.server!.mintJoinToken(), 'alive46');
    const agent = await FakeAgent.connect(wsUrl(cluster), a.token);
    agent.hello();
    await agent.next('snapshot');
    await new Promise((r) => setTimeout(r, 5 * HEARTBEAT_MS));
    expect(agent.closed).toBeNull();
    expect(cluster.server!.hub.connectedHosts().has(a.hostId)).toBe(true);
    agent.ws.close();
  });
});

describe('an agent that never reads (case 47)', () => {
  const CAP = 64 * 1024;
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = new TestCluster({ dockerSocket: '/nonexistent', env: { MACHETE_HEARTBEAT_MS: '600000', MACHETE_AGENT_SEND_BUFFER_BYTES: String(CAP) } });
    await cluster.startServer();
  });
  afterAll(() => cluster?.close());

  /** A fake host with room for many tiny instances, and a ~900 KB tool pinned to it. */
  async function floodTarget(name: string) {
    const a = await enroll(cluster.url, await cluster.server!.mintJoinToken(), name);
    const agent = await FakeAgent.connect(wsUrl(cluster), a.token);
    agent.hello({ cpus: 64, memoryMb: 1_000_000 });
    await agent.next('snapshot');
    await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${a.hostId}`)).body.status === 'ready', 'host ready');
    const env = Object.fromEntries(Array.from({ length: 28 }, (_, i) => [`V${i}`, 'x'.repeat(32_000)]));
    const spec = { image: 'machete/busybox:test', env, resources: { cpus: 0.01, memoryMb: 6, pids: 1 }, placement: { labels: { role: name } } };
    expect((await cluster.api('PUT', `/api/v1/tools/${name}`, spec)).status).toBe(201);
    return { ...a, agent };
  }

  it('is dropped once its send buffer passes the cap, while a reading agent under the same flood stays', async () => {
    const deaf = await floodTarget('deaf47');
    const reading = await floodTarget('ear47');
    const mark = await eventMark(cluster.server!.deps.events);
    (deaf.agent.ws as unknown as { _socket: Socket })._socket.pause(); // stop reading from here on

    // Each scale step pushes one ~900 KB desired instance at each agent.
    const hub = cluster.server!.hub;
    let steps = 0;
    while (steps < 60 && hub.connectedHosts().has(deaf.hostId)) {
      steps++;
      for (const tool of ['deaf47', 'ear47']) expect((await cluster.api('PUT', `/api/v1/tools/${tool}/deployment`, { replicas: steps })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(async () => !hub.connectedHosts().has(deaf.hostId), 'the deaf agent dropped', 5000);
    // Dropped after what the kernel buffers hold plus the cap, long before 60 steps.
    expect(steps).toBeLessThan(40);
    expect(await refusalsSince(cluster.server!.deps.events, mark, (e) => e.actor === `host:${deaf.hostId}` && /send buffer/.test(e.reason ?? ''))).toBe(1);
    await waitFor(async () => reading.agent.frames.filter((f) => f.type === 'delta').length >= steps, 'every delta at the reading agent');
    expect(reading.agent.closed).toBeNull();
    expect(hub.connectedHosts().has(reading.hostId)).toBe(true);
    expect((await cluster.api('GET', '/api/health')).status).toBe(200);
    reading.agent.ws.close();
  }, 60_000);
});
