import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hosts } from '../../db/src/index.ts';
import type { InvocationRequest } from '../../protocol/src/index.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// The control-plane side of invocations, with a hand-driven agent on a real WebSocket.
let cluster: TestCluster;
let agent: FakeAgent;
let hostId: string;
let agentToken: string;
const spec = { image: 'machete/busybox:test', command: ['echo'], timeoutSeconds: 30, placement: { labels: { role: 'inv' } } };

function invokes(): InvocationRequest[] {
  return agent.frames.filter((f) => f.type === 'invoke').map((f) => (f as { invocation: InvocationRequest }).invocation);
}
async function nextInvoke(after: number): Promise<InvocationRequest> {
  return waitFor(async () => invokes()[after], 'invoke frame', 5000, 10);
}
function answer(id: string, over: Record<string, unknown> = {}) {
  agent.send({ type: 'invocationResult', result: { id, status: 'succeeded', exitCode: 0, stdout: 'out', stderr: '', truncated: false, durationMs: 12, containerId: 'c1', reason: null, ...over } });
}

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: '/nonexistent', env: { MACHETE_INVOKE_MAX_PER_TOOL: '3' } });
  await cluster.startServer();
  await cluster.api('PUT', '/api/v1/tools/inv', spec);
});
afterAll(() => cluster?.close());

describe('invocations (control plane)', () => {
  it('answers 503 when no connected host matches', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    expect(r.status).toBe(503);
  });

  it('sends the request to the host and answers with its result', async () => {
    const a = await enrollFake(cluster, 'inv');
    hostId = a.hostId;
    agentToken = a.token;
    agent = await FakeAgent.connect(cluster, a.token);
    agent.hello();
    await agent.next('snapshot');
    const pending = cluster.api('POST', '/api/v1/tools/inv/invoke', { args: ['a b', "it's"], stdin: 'in', env: { X: '1' }, timeoutSeconds: 999 });
    const req = await nextInvoke(0);
    expect(req).toMatchObject({ tool: 'inv', args: ['a b', "it's"], stdin: 'in', timeoutSeconds: 30, maxOutputBytes: 1024 * 1024 });
    expect(req.spec.env).toEqual({ X: '1' });
    answer(req.id, { exitCode: 0, stdout: 'hello' });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: req.id, status: 'succeeded', exitCode: 0, stdout: 'hello', hostId, truncated: false, durationMs: 12 });
  });

  it('returns 202 with wait:false and the result later', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    expect(r.status).toBe(202);
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body.status).toBe('running');
    answer(r.body.id, { status: 'failed', exitCode: 3, stderr: 'boom' });
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body.status === 'failed', 'failed');
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body).toMatchObject({ exitCode: 3, stderr: 'boom' });
  });

  it('cancels through the agent', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    const del = cluster.api('DELETE', `/api/v1/invocations/${r.body.id}`);
    await waitFor(async () => agent.frames.find((f) => f.type === 'cancel' && f.id === r.body.id), 'cancel frame', 5000, 10);
    answer(r.body.id, { status: 'cancelled', exitCode: 137 });
    expect((await del).body.status).toBe('cancelled');
  });

  it('answers 429 beyond the per-tool limit and accepts again once one finishes', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false })).body.id);
    const over = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    expect(over.status).toBe(429);
    answer(ids[0]!);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${ids[0]}`)).body.status === 'succeeded', 'finished');
    expect((await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false })).status).toBe(202);
    for (const f of invokes()) answer(f.id);
  });

  it('ignores a second result and refuses a result from another host', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    const b = await enrollFake(cluster, 'other');
    const liar = await FakeAgent.connect(cluster, b.token);
    liar.hello();
    await liar.next('snapshot');
    liar.send({ type: 'invocationResult', result: { id: r.body.id, status: 'succeeded', exitCode: 0, stdout: 'forged', stderr: '', truncated: false, durationMs: 1, containerId: null, reason: null } });
    await waitFor(async () => (await cluster.api('GET', '/api/v1/events?limit=20')).body.find((e: any) => e.action === 'agent.invocationResult' && e.outcome === 'refused'), 'audit');
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body.status).toBe('running');
    answer(r.body.id, { stdout: 'real' });
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body.status === 'succeeded', 'done');
    answer(r.body.id, { stdout: 'late duplicate', status: 'failed' });
    await new Promise((res) => setTimeout(res, 200));
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body).toMatchObject({ status: 'succeeded', stdout: 'real' });
    liar.ws.close();
  });

  it('lets an invoker run tools and read only its own invocations', async () => {
    const mine = await cluster.token('invoker');
    const theirs = await cluster.token('invoker');
    expect((await cluster.api('PUT', '/api/v1/tools/inv', spec, mine)).status).toBe(403);
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false }, mine);
    expect(r.status).toBe(202);
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`, undefined, mine)).status).toBe(200);
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`, undefined, theirs)).status).toBe(404);
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`, undefined, await cluster.token('viewer'))).status).toBe(200);
    answer(r.body.id);
  });

  it('refuses bad input naming the field', async () => {
    const bad = await cluster.api('POST', '/api/v1/tools/inv/invoke', { args: 'rm -rf /' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.field).toBe('args');
    const env = await cluster.api('POST', '/api/v1/tools/inv/invoke', { env: { 'BAD NAME': 'x' } });
    expect(env.status).toBe(400);
    expect((await cluster.api('POST', '/api/v1/tools/nope/invoke', {})).status).toBe(404);
  });

  it('counts invocations still running from before a control-plane restart against the limits', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false })).body.id);
    await cluster.stopServer();
    await cluster.startServer();
    agent = await FakeAgent.connect(cluster, agentToken);
    agent.hello();
    await agent.next('snapshot');
    const over = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    expect(over.status).toBe(429);
    answer(ids[0]!);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${ids[0]}`)).body.status === 'succeeded', 'finished');
    const again = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    expect(again.status).toBe(202);
    for (const id of [...ids.slice(1), again.body.id]) answer(id);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${again.body.id}`)).body.status === 'succeeded', 'all finished');
  });

  it('fails invocations whose host goes down', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/inv/invoke', { wait: false });
    agent.ws.terminate();
    await cluster.server!.deps.db.update(hosts).set({ status: 'down' }).where(eq(hosts.id, hostId));
    await cluster.server!.deps.services.invocations.sweep();
    expect((await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body).toMatchObject({ status: 'failed', reason: 'host lost' });
  });
});
