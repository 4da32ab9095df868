import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES } from '../../protocol/src/index.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { craftJwt, claimsOf, enroll, eventMark, FakeAgent, refusalsSince, upgradeStatus } from './helpers.ts';

// Cases 39–45 of SECURITY-CASES.md over a real WebSocket with hand-driven agents.
// Liveness and the send-buffer cap (46, 47) are in agentLiveness.test.ts.
let cluster: TestCluster;
const WS = () => `${cluster.url.replace('http', 'ws')}/api/v1/agent/connect`;
const events = () => cluster.server!.deps.events;
const join = async (name: string) => enroll(cluster.url, await cluster.server!.mintJoinToken(), name);
const health = async () => (await cluster.api('GET', '/api/health')).status;
const refusals = (mark: number, action: string, reason?: RegExp) =>
  refusalsSince(events(), mark, (e) => e.action === action && (!reason || reason.test(e.reason ?? '')));

async function connected(name: string, capacity?: { cpus: number; memoryMb: number }) {
  const a = await join(name);
  const agent = await FakeAgent.connect(WS(), a.token);
  agent.hello(capacity);
  await agent.next('snapshot');
  return { ...a, agent };
}

/** A tool pinned to the fake host `role`, with one replica placed there; returns that instance's id. */
async function placedInstance(tool: string, role: string, hostId: string): Promise<string> {
  await cluster.api('PUT', `/api/v1/tools/${tool}`, { image: 'machete/busybox:test', placement: { labels: { role } } });
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.status === 'ready', 'host ready');
  await cluster.api('PUT', `/api/v1/tools/${tool}/deployment`, { replicas: 1 });
  return (await waitFor(async () => (await cluster.api('GET', `/api/v1/instances?tool=${tool}&host=${hostId}`)).body[0], 'placed instance')).id;
}
const stateOf = async (tool: string) => (await cluster.api('GET', `/api/v1/instances?tool=${tool}`)).body[0]?.state;
const status = (id: string, seq: number, revision: number, state: string) => ({
  type: 'status', seq, revision, instances: [{ id, state, containerId: 'c1', exitCode: null, restarts: 0, reason: null, version: 1 }],
});

beforeAll(async () => {
  // A long heartbeat: nothing in this file may be closed for missing pongs.
  cluster = new TestCluster({ dockerSocket: '/nonexistent', env: { MACHETE_HEARTBEAT_MS: '60000' } });
  await cluster.startServer();
});
afterAll(() => cluster?.close());

describe('agent channel', () => {
  it('answers 401 before the upgrade to no token, an expired, revoked or wrong-class token (case 39)', async () => {
    const a = await join('auth39');
    const expired = (await cluster.server!.tokens.issue({ kind: 'agent', hostId: a.hostId, ttlSeconds: -60 })).token;
    const forged = craftJwt({ alg: 'HS256', typ: 'machete-agent+jwt' }, claimsOf(a.token), new Uint8Array(0));
    const revoked = await cluster.server!.tokens.issue({ kind: 'agent', hostId: a.hostId, ttlSeconds: 60 });
    await cluster.server!.tokens.revoke(revoked.id);
    const user = (await cluster.server!.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 60 })).token;
    const mark = await eventMark(events());
    const refused: Array<Record<string, string>> = [{}, { authorization: `Bearer ${expired}` }, { authorization: `Bearer ${forged}` }, { authorization: `Bearer ${revoked.token}` }, { authorization: `Bearer ${user}` }, { authorization: `Bearer ${await cluster.server!.mintJoinToken()}` }];
    for (const headers of refused) expect(await upgradeStatus(WS(), headers)).toBe(401);
    expect(await refusals(mark, 'agent.connect')).toBe(refused.length);
    expect(cluster.server!.hub.connectedHosts().has(a.hostId)).toBe(false);
    expect(await upgradeStatus(WS(), { authorization: `Bearer ${a.token}` })).toBe(101);
  });

  it('answers 403 to a browser Origin, even with a valid agent token (case 40)', async () => {
    const a = await join('origin40');
    const mark = await eventMark(events());
    for (const origin of ['https://evil.example', 'null', cluster.url]) {
      expect(await upgradeStatus(WS(), { authorization: `Bearer ${a.token}`, origin })).toBe(403);
    }
    expect(await refusals(mark, 'agent.connect', /Origin/)).toBe(3);
  });

  it('closes a connection that sends a frame over the limit with 1009 and keeps serving (case 41)', async () => {
    const { hostId, agent } = await connected('big41');
    const mark = await eventMark(events());
    const rssBefore = process.memoryUsage().rss;
    agent.send(JSON.stringify({ type: 'heartbeat', at: 1, pad: 'x'.repeat(MAX_FRAME_BYTES) }));
    expect((await agent.waitClosed()).code).toBe(1009);
    expect(await health()).toBe(200);
    await waitFor(async () => !cluster.server!.hub.connectedHosts().has(hostId), 'session gone');
    expect(await refusals(mark, 'agent.frame', /larger than the limit/)).toBe(1);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it('refuses invalid UTF-8, binary, non-JSON, unknown and incomplete frames; the server keeps running (case 42)', async () => {
    const mark = await eventMark(events());
    const utf8 = await connected('utf8-42');
    utf8.agent.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect((await utf8.agent.waitClosed()).code).toBe(1007);
    const binary = await connected('bin42');
    binary.agent.ws.send(Buffer.from('{"type":"heartbeat","at":1}'), { binary: true });
    expect((await binary.agent.waitClosed()).code).toBe(1003);
    const garbage = await connected('junk42');
    const junk = ['not json', '{"type":"launch","image":"x"}', '{"type":"status","seq":"x"}', '{"type":"status","seq":1}', '[]', 'null', '{"type":"hello"}'];
    for (const j of junk) garbage.agent.send(j);
    await waitFor(async () => garbage.agent.frames.filter((f) => f.type === 'error').length === junk.length, 'an error frame per bad frame');
    expect(garbage.agent.closed).toBeNull();
    expect(await health()).toBe(200);
    expect(await refusals(mark, 'agent.frame', /UTF-8/)).toBe(1);
    expect(await refusals(mark, 'agent.frame', /binary/)).toBe(1);
    expect(await refusals(mark, 'agent.frame', /invalid frame/)).toBe(junk.length);
    garbage.agent.ws.close();
  });

  it('ignores status reports replayed with an old sequence number or about an older revision (case 43)', async () => {
    const { hostId, agent } = await connected('seq43');
    const id = await placedInstance('seq43', 'seq43', hostId);
    agent.send(status(id, 5, 10, 'running'));
    await waitFor(async () => (await stateOf('seq43')) === 'running', 'running');
    const mark = await eventMark(events());
    agent.send(status(id, 5, 10, 'failed')); // same seq: a replay
    agent.send(status(id, 3, 10, 'failed')); // older seq
    agent.send(status(id, 6, 9, 'failed')); // newer seq, older revision
    // Frames are handled in order: once all three are audited, none of them was applied.
    await waitFor(async () => (await refusals(mark, 'agent.frame', /old sequence number|older revision/)) === 3, 'three ignored reports');
    expect(await stateOf('seq43')).toBe('running');
    expect(await refusals(mark, 'agent.frame', /older revision/)).toBe(1);
    agent.send(status(id, 7, 10, 'exited')); // a fresh report still applies
    await waitFor(async () => (await stateOf('seq43')) === 'exited', 'the fresh report applied');
    agent.ws.close();
  });

  it('refuses and audits reports about instances placed on another host (case 44)', async () => {
    const owner = await connected('own44');
    const id = await placedInstance('own44', 'own44', owner.hostId);
    owner.agent.send(status(id, 1, 1, 'running'));
    await waitFor(async () => (await stateOf('own44')) === 'running', 'running');
    const liar = await connected('liar44');
    const mark = await eventMark(events());
    liar.agent.send(status(id, 1, 1, 'failed'));
    await waitFor(async () => (await refusals(mark, 'agent.status', /not placed on this host/)) === 1, 'audit event');
    expect(await stateOf('own44')).toBe('running');
    owner.agent.ws.close();
    liar.agent.ws.close();
  });

  it('lets the newer of two connections for one host win; the older one can no longer report (case 45)', async () => {
    const first = await connected('twin45');
    const id = await placedInstance('twin45', 'twin45', first.hostId);
    const second = await FakeAgent.connect(WS(), first.token);
    // The server replaced the first session when the second was accepted: what the first
    // still sends (it may not have seen the close yet) is not applied.
    first.agent.send(status(id, 1, 1, 'failed'));
    second.hello();
    await second.next('snapshot');
    expect((await first.agent.waitClosed()).code).toBe(4001);
    expect(second.closed).toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    expect(await stateOf('twin45')).not.toBe('failed');
    second.send(status(id, 1, 1, 'running'));
    await waitFor(async () => (await stateOf('twin45')) === 'running', 'the winner applied');
    await new Promise((r) => setTimeout(r, 200));
    expect(await stateOf('twin45')).toBe('running');
    expect(cluster.server!.hub.connectedHosts().has(first.hostId)).toBe(true);
    second.ws.close();
  });
});
