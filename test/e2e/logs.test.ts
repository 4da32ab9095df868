import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseSse } from '../../apps/cli/src/sse.ts';
import { machete, tempHome } from '../helpers/cli.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// Log streaming end to end: HTTP SSE → control plane → WebSocket → agent → real dockerd, and back.
let cluster: TestCluster;
let viewer: string;
let instanceId: string;
const image = () => inject('testImage');

type Ev = { event: string; body: any };

/** Opens a log stream; on a non-2xx answer returns its status and JSON body instead. */
async function open(path: string, opts: { token?: string; signal?: AbortSignal } = {}) {
  const res = await fetch(`${cluster.url}${path}`, {
    headers: { authorization: `Bearer ${opts.token ?? viewer}`, accept: 'text/event-stream' },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (!res.ok) return { status: res.status, error: await res.json(), events: null };
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const events = (async function* () {
    for await (const m of parseSse(res.body!)) yield { event: m.event, body: JSON.parse(m.data) } as Ev;
  })();
  return { status: res.status, error: null, events };
}

/** Reads events until `done` says so (or the stream ends); fails after `ms`. */
async function readUntil(events: AsyncGenerator<Ev>, done: (seen: Ev[]) => boolean, ms = 15_000): Promise<Ev[]> {
  const seen: Ev[] = [];
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out; saw ${JSON.stringify(seen).slice(-600)}`)), ms));
  const read = (async () => {
    // next() by hand: breaking out of for-await would close the generator for the next reader.
    for (;;) {
      const n = await events.next();
      if (n.done) return seen;
      seen.push(n.value);
      if (done(seen)) return seen;
    }
  })();
  return Promise.race([read, timeout]);
}

const text = (evs: Ev[], stream: 'stdout' | 'stderr') => evs.filter((e) => e.event === stream).map((e) => e.body.data).join('');
const ticks = (s: string) => [...s.matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));

async function currentContainer(): Promise<string> {
  return waitFor(async () => {
    const list = (await cluster.api('GET', '/api/v1/instances?tool=printer')).body;
    const i = list.find((x: any) => x.id === instanceId && x.state === 'running' && x.containerId);
    if (!i) return undefined;
    // The API may still name a container a previous test killed: ask the engine too.
    const info = await cluster.docker.getContainer(i.containerId).inspect().catch(() => null);
    const up = info?.State.Running && Date.now() - Date.parse(info.State.StartedAt) > 500;
    return up ? (i.containerId as string) : undefined;
  }, 'printer running');
}

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
  viewer = await cluster.token('viewer');
  const script = 'echo hello-out; echo hello-err >&2; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done';
  expect((await cluster.api('PUT', '/api/v1/tools/printer', { image: image(), command: ['sh', '-c', script] })).status).toBe(201);
  expect((await cluster.api('PUT', '/api/v1/tools/printer/deployment', { replicas: 1 })).status).toBe(200);
  instanceId = await waitFor(async () => (await cluster.api('GET', '/api/v1/instances?tool=printer')).body.find((i: any) => i.state === 'running')?.id as string | undefined, 'printer instance');
  await cluster.api('PUT', '/api/v1/tools/sh', { image: image(), command: ['sh', '-c'], timeoutSeconds: 30 });
});
afterAll(() => cluster?.close());

describe('instance logs through the agent', () => {
  it('without follow: the log so far, stdout and stderr apart, then end', async () => {
    await waitFor(async () => {
      const r = await open(`/api/v1/instances/${instanceId}/logs`);
      const evs = await readUntil(r.events!, () => false);
      return ticks(text(evs, 'stdout')).length >= 3 && evs;
    }, 'three ticks logged');
    const r = await open(`/api/v1/instances/${instanceId}/logs`);
    const evs = await readUntil(r.events!, () => false);
    expect(text(evs, 'stdout')).toMatch(/^hello-out\ntick-1\ntick-2\n/);
    expect(text(evs, 'stderr')).toBe('hello-err\n');
    expect(evs.at(-1)).toEqual({ event: 'end', body: { reason: 'end of log' } });
    const tail = await readUntil((await open(`/api/v1/instances/${instanceId}/logs?tail=1`)).events!, () => false);
    expect(text(tail, 'stdout') + text(tail, 'stderr')).toMatch(/^tick-\d+\n$/);
  });

  it('follows new lines live and ends when the container stops', async () => {
    const containerId = await currentContainer();
    const r = await open(`/api/v1/instances/${instanceId}/logs?follow=true&tail=1`);
    expect(r.status).toBe(200);
    const first = await readUntil(r.events!, (s) => ticks(text(s, 'stdout')).length >= 1);
    const start = ticks(text(first, 'stdout'))[0]!;
    // Lines printed after the request was made arrive on the same stream.
    const more = await readUntil(r.events!, (s) => ticks(text(s, 'stdout')).some((n) => n >= start + 3));
    const all = [...ticks(text(first, 'stdout')), ...ticks(text(more, 'stdout'))];
    expect(all.slice(0, 4)).toEqual([start, start + 1, start + 2, start + 3]); // in order, none lost or repeated
    await cluster.docker.getContainer(containerId).kill();
    const rest = await readUntil(r.events!, (s) => s.some((e) => e.event === 'end' || e.event === 'error'));
    expect(rest.at(-1)).toEqual({ event: 'end', body: { reason: 'container stopped' } });
    await waitFor(async () => cluster.agent!.logs.active() === 0 && cluster.agent!.logs.engineStreams() === 0, 'agent stream closed');
  });

  it('a client that goes away cancels the agent stream and its engine read', async () => {
    await currentContainer();
    const ac = new AbortController();
    const r = await open(`/api/v1/instances/${instanceId}/logs?follow=true&tail=0`, { signal: ac.signal });
    await readUntil(r.events!, (s) => text(s, 'stdout').includes('tick-'));
    expect(cluster.agent!.logs.active()).toBe(1);
    expect(cluster.agent!.logs.engineStreams()).toBe(1);
    ac.abort();
    await waitFor(async () => cluster.agent!.logs.active() === 0 && cluster.agent!.logs.engineStreams() === 0, 'agent and engine streams closed', 10_000);
  });

  it('a client that does not read holds back the agent instead of being buffered for', async () => {
    await currentContainer();
    // 20 MB of backlog: far more than one window (256 KiB) and the socket buffers on the way.
    expect((await cluster.api('PUT', '/api/v1/tools/flood', { image: image(), command: ['sh', '-c', 'yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c 20000000; echo; echo END-OF-FLOOD; sleep 3600'] })).status).toBe(201);
    await cluster.api('PUT', '/api/v1/tools/flood/deployment', { replicas: 1 });
    const flood = await waitFor(async () => (await cluster.api('GET', '/api/v1/instances?tool=flood')).body.find((i: any) => i.state === 'running')?.id as string | undefined, 'flood running');
    // The whole 20 MB is in the engine's log before the slow reader starts.
    await waitFor(async () => {
      const evs = await readUntil((await open(`/api/v1/instances/${flood}/logs?tail=1`)).events!, () => false);
      return text(evs, 'stdout').includes('END-OF-FLOOD');
    }, 'the flood written', 60_000, 250);
    const ac = new AbortController();
    const res = await fetch(`${cluster.url}/api/v1/instances/${flood}/logs`, { headers: { authorization: `Bearer ${viewer}` }, signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read(); // take one piece, then stop reading
    await new Promise((r) => setTimeout(r, 1500));
    // Paused well before the end of the 8 MB log: the agent waits for credit.
    expect(cluster.agent!.logs.active()).toBe(1);
    expect(cluster.agent!.logs.engineStreams()).toBe(1);
    // Stalls once the socket buffers between server and client are full: nothing more leaves the agent,
    // and far less than the log was sent.
    let sent = -1;
    await waitFor(async () => {
      const before = cluster.agent!.logs.sentBytes();
      await new Promise((r) => setTimeout(r, 1000));
      sent = cluster.agent!.logs.sentBytes();
      return sent === before;
    }, 'the agent stream to stall', 60_000, 0);
    expect(sent).toBeLessThan(12_000_000);
    expect(cluster.agent!.logs.active()).toBe(1);
    console.info(`flood: the agent sent ${sent} bytes of a 20000000-byte log to a client that read one piece`);
    ac.abort();
    await waitFor(async () => cluster.agent!.logs.active() === 0 && cluster.agent!.logs.engineStreams() === 0, 'flood stream closed', 10_000);
    await cluster.api('DELETE', '/api/v1/tools/flood');
  }, 90_000);

  it('unknown ids are 404 in the API error shape; bad queries 400', async () => {
    const inst = await open('/api/v1/instances/i0000000000000000/logs');
    expect(inst.status).toBe(404);
    expect(inst.error).toMatchObject({ error: { code: 'not_found', message: 'instance not found' } });
    const inv = await open('/api/v1/invocations/v0000000000000000/logs');
    expect(inv.status).toBe(404);
    expect((inv.error as any).error.code).toBe('not_found');
    const bad = await open(`/api/v1/instances/${instanceId}/logs?tail=-1`);
    expect(bad.status).toBe(400);
    expect((bad.error as any).error.details.field).toBe('tail');
  });

  it('viewers may read logs; invokers may not', async () => {
    const invoker = await cluster.token('invoker');
    expect((await open(`/api/v1/instances/${instanceId}/logs`, { token: invoker })).status).toBe(403);
    const inv = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['echo x'] }, invoker);
    expect(inv.status).toBe(200);
    expect((await open(`/api/v1/invocations/${inv.body.id}/logs`, { token: invoker })).status).toBe(403);
    expect((await open(`/api/v1/invocations/${inv.body.id}/logs`)).status).toBe(200);
  });

  it('documents both routes in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${cluster.url}/api/openapi.json`)).json()) as any;
    expect(doc.paths['/api/v1/instances/{id}/logs'].get.responses['200'].content).toHaveProperty('text/event-stream');
    expect(doc.paths['/api/v1/invocations/{id}/logs'].get.responses['404']).toBeDefined();
  });
});

describe('invocation logs', () => {
  it('after completion: the stored stdout and stderr, then end', async () => {
    const inv = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['echo out-1; echo err-1 >&2; echo out-2'] });
    expect(inv.body.status).toBe('succeeded');
    for (const follow of ['', '?follow=true']) {
      const evs = await readUntil((await open(`/api/v1/invocations/${inv.body.id}/logs${follow}`)).events!, () => false);
      expect(text(evs, 'stdout')).toBe('out-1\nout-2\n');
      expect(text(evs, 'stderr')).toBe('err-1\n');
      expect(evs.at(-1)).toEqual({ event: 'end', body: { reason: 'invocation succeeded' } });
    }
  });

  it('while running: lines arrive live, and the stream ends with the invocation', async () => {
    const inv = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['echo first; sleep 2; echo second >&2; sleep 1'], wait: false });
    expect(inv.status).toBe(202);
    const r = await open(`/api/v1/invocations/${inv.body.id}/logs?follow=true`);
    const t0 = Date.now();
    const first = await readUntil(r.events!, (s) => text(s, 'stdout').includes('first'));
    expect(text(first, 'stderr')).toBe(''); // second is 2 s away: this really is live
    const rest = await readUntil(r.events!, (s) => s.some((e) => e.event === 'end'));
    expect(text(rest, 'stderr')).toBe('second\n');
    expect(rest.at(-1)).toEqual({ event: 'end', body: { reason: 'invocation finished' } });
    expect(Date.now() - t0).toBeGreaterThan(1500);
    await waitFor(async () => (await cluster.api('GET', `/api/v1/invocations/${inv.body.id}`)).body.status === 'succeeded', 'invocation stored');
  });
});

describe('machete logs', () => {
  it('prints an instance log, an invocation output, and fails on unknown ids', async () => {
    const env = { HOME: tempHome(), MACHETE_SERVER: cluster.url, MACHETE_TOKEN: viewer };
    await currentContainer();
    const inst = await machete(['logs', instanceId, '--tail', '2'], env);
    expect(inst.code).toBe(0);
    expect(inst.stdout).toMatch(/^(tick-\d+\n){2}$/);
    const inv = await cluster.api('POST', '/api/v1/tools/sh/invoke', { args: ['echo from-invocation; echo to-stderr >&2'] });
    const out = await machete(['logs', inv.body.id], env);
    expect(out).toMatchObject({ code: 0, stdout: 'from-invocation\n', stderr: 'to-stderr\n' });
    const explicit = await machete(['logs', '--invocation', inv.body.id, '--json'], env);
    expect(explicit.stdout.trim().split('\n').map((l) => JSON.parse(l).event)).toEqual(['stdout', 'stderr', 'end']);
    const missing = await machete(['logs', 'nope'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no instance or invocation nope');
  });

  it('follows until the container stops', async () => {
    const env = { HOME: tempHome(), MACHETE_SERVER: cluster.url, MACHETE_TOKEN: viewer };
    const containerId = await currentContainer();
    let killed = false;
    const run = machete(['logs', instanceId, '-f', '--tail', '0'], env, {
      onStdout: (all) => {
        if (!killed && ticks(all).length >= 2) {
          killed = true;
          void cluster.docker.getContainer(containerId).kill();
        }
      },
    });
    const r = await run;
    expect(r.code).toBe(0);
    expect(ticks(r.stdout).length).toBeGreaterThanOrEqual(2);
  });
});

describe('host not connected', () => {
  it('ends a following stream with an error when the agent goes, then answers 503 with the reason', async () => {
    await currentContainer();
    const following = await open(`/api/v1/instances/${instanceId}/logs?follow=true&tail=1`);
    await readUntil(following.events!, (s) => text(s, 'stdout').includes('tick-'));
    await cluster.stopAgent();
    const rest = await readUntil(following.events!, (s) => s.some((e) => e.event === 'error' || e.event === 'end'));
    expect(rest.at(-1)).toEqual({ event: 'error', body: { error: { code: 'unavailable', message: 'the host disconnected' } } });
    await waitFor(async () => cluster.server!.hub.connectedHosts().size === 0, 'agent gone');
    const r = await open(`/api/v1/instances/${instanceId}/logs`);
    expect(r.status).toBe(503);
    expect(r.error).toMatchObject({ error: { code: 'unavailable', message: 'the host is not connected to this control plane' } });
  });
});
