import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { machete, tempHome } from '../helpers/cli.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// Invocations end to end: HTTP → control plane → WebSocket → agent → real dockerd, and the CLI.
let cluster: TestCluster;
let docker: Docker;
let env: Record<string, string>;
const image = () => inject('testImage');

const leftovers = async () =>
  (await docker.listContainers({ all: true, filters: { label: ['machete.kind=invocation', `machete.host=${cluster.agent!.hostId}`] } })).length;

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  docker = cluster.docker;
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
  await cluster.api('PUT', '/api/v1/tools/args', { image: image(), command: ['printf', '%s|'], timeoutSeconds: 20 });
  await cluster.api('PUT', '/api/v1/tools/sh', { image: image(), command: ['sh', '-c'], timeoutSeconds: 20 });
  await cluster.api('PUT', '/api/v1/tools/cat', { image: image(), command: ['cat'] });
  env = { HOME: tempHome(), MACHETE_SERVER: cluster.url, MACHETE_TOKEN: await cluster.token('invoker') };
});
afterAll(() => cluster?.close());

describe('invocations on a real engine', () => {
  it('passes args verbatim as an argument array, never through a shell', async () => {
    const args = ['a b', "it's", '$HOME', 'x;rm -rf /', 'line\nbreak', '"q"'];
    const r = await cluster.api('POST', '/api/v1/tools/args/invoke', { args });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: `${args.join('|')}|`, truncated: false });
    expect(r.body.durationMs).toBeGreaterThan(0);
    // The result is answered as soon as it is known; the container's removal follows at once.
    await waitFor(async () => (await leftovers()) === 0, 'container removed');
  });

  it('reports the exit code and keeps stdout and stderr apart', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['echo out; echo err >&2; exit 7'] });
    expect(r.body).toMatchObject({ status: 'failed', exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
  });

  it('writes stdin to the process and closes it', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/cat/invoke', { stdin: 'hello\nworld' });
    expect(r.body).toMatchObject({ status: 'succeeded', stdout: 'hello\nworld' });
  });

  it('kills it at the timeout and says so', async () => {
    const t0 = Date.now();
    const r = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['sleep 30'], timeoutSeconds: 1 });
    expect(r.body.status).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(8000);
    await waitFor(async () => (await leftovers()) === 0, 'container removed');
  });

  it('cancels a running invocation and removes its container', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['sleep 30'], wait: false });
    await waitFor(async () => (await leftovers()) === 1, 'container running');
    const del = await cluster.api('DELETE', `/api/v1/invocations/${r.body.id}`);
    expect(del.body.status).toBe('cancelled');
    await waitFor(async () => (await leftovers()) === 0, 'container removed');
  });

  it('caps a flood and marks it truncated', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['yes machete | head -c 50000000'] });
    expect(r.body.status).toBe('succeeded');
    expect(r.body.truncated).toBe(true);
    expect(r.body.stdout.length).toBe(1024 * 1024);
  });

  it('runs through the CLI, printing stdout and exiting with the tool exit code', async () => {
    const ok = await machete(['invoke', 'args', '--', 'one two', 'three'], env);
    expect(ok).toMatchObject({ code: 0, stdout: 'one two|three|' });
    const fail = await machete(['invoke', 'sh', '--', 'echo nope >&2; exit 3'], env);
    expect(fail.code).toBe(3);
    expect(fail.stderr).toContain('nope');
    const piped = await machete(['invoke', 'cat', '--stdin'], env, { stdin: 'from stdin' });
    expect(piped).toMatchObject({ code: 0, stdout: 'from stdin' });
    const asJson = await machete(['invoke', 'args', '--json', '--', 'x'], env);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ status: 'succeeded', stdout: 'x|' });
  });

  it('leaves no invocation container behind after an agent restart mid-run', async () => {
    const r = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['sleep 30'], wait: false });
    await waitFor(async () => (await leftovers()) === 1, 'container running');
    await cluster.stopAgent();
    await cluster.startAgent();
    await waitFor(async () => (await leftovers()) === 0, 'leftover removed by the restarted agent');
    // The control plane learns the outcome: the agent reports it, or the deadline sweep fails it.
    const inv = (await cluster.api('GET', `/api/v1/invocations/${r.body.id}`)).body;
    expect(['running', 'failed', 'cancelled']).toContain(inv.status);
  });
});
