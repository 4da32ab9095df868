import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { InvocationResultSchema, MAX_FRAME_BYTES, ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { InvocationRequest, InvocationResult, ToolSpecInput } from '../../../protocol/src/index.ts';
import { createDockerodePort } from '../docker/dockerode.ts';
import { createMemoryPort } from '../docker/memory.ts';
import type { MemoryPortOptions } from '../docker/memory.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import type { DockerPort } from '../docker/port.ts';
import { parseAllowedMounts } from '../policy/mounts.ts';
import { createInvocationRunner, fitResult } from './runner.ts';
import type { InvocationRunner } from './runner.ts';

const MIB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function harness(port: DockerPort, o: { hostId: string; image: string; engineEndpoint: string; maxConcurrent?: number; allowedMounts?: string }) {
  const results: InvocationResult[] = [];
  const waiters = new Map<string, (r: InvocationResult) => void>();
  const runner = createInvocationRunner({
    port,
    hostId: o.hostId,
    build: (req) =>
      buildCreatePayload(
        { id: req.id, tool: req.tool, version: req.version, kind: 'invocation', revision: 0, desired: 'running', spec: req.spec },
        { hostId: o.hostId, allowedMounts: parseAllowedMounts(o.allowedMounts ?? ''), engineEndpoint: o.engineEndpoint, extraArgs: req.args },
      ),
    onResult: (r) => {
      results.push(r);
      waiters.get(r.id)?.(r);
    },
    ...(o.maxConcurrent ? { maxConcurrent: o.maxConcurrent } : {}),
  });
  const request = (spec: Omit<ToolSpecInput, 'image'> & { image?: string }, over: Partial<InvocationRequest> = {}): InvocationRequest => ({
    id: `inv-${randomUUID().slice(0, 8)}`,
    tool: 'tool',
    version: 1,
    spec: ToolSpecSchema.parse({ image: o.image, ...spec }),
    args: [],
    stdin: null,
    timeoutSeconds: 20,
    maxOutputBytes: MIB,
    ...over,
  });
  const resultOf = (id: string) => new Promise<InvocationResult>((resolve) => waiters.set(id, resolve));
  const invoke = (req: InvocationRequest) => {
    const p = resultOf(req.id);
    runner.run(req);
    return p;
  };
  return { runner, results, request, invoke, resultOf };
}

describe('invocation runner (logic, memory port)', () => {
  const setup = (opts: MemoryPortOptions = {}, maxConcurrent?: number) => {
    const mem = createMemoryPort(opts);
    return { mem, ...harness(mem, { hostId: 'mem-host', image: 'machete/busybox:test', engineEndpoint: 'memory://', ...(maxConcurrent ? { maxConcurrent } : {}) }) };
  };
  const forever = { runScript: () => new Promise<never>(() => {}) };

  it('echoes stdin by default and reports a frame-valid result', async () => {
    const { invoke, request } = setup();
    const r = await invoke(request({}, { stdin: 'hi' }));
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'hi', stderr: '', truncated: false, reason: null });
    expect(InvocationResultSchema.safeParse(r).success).toBe(true);
  });

  it('answers agent busy at once beyond maxConcurrent, without touching the engine', async () => {
    const { mem, runner, invoke, request } = setup(forever, 2);
    const a = request({});
    const b = request({});
    runner.run(a);
    runner.run(b);
    const third = await invoke(request({}));
    expect(third).toMatchObject({ status: 'failed', reason: 'agent busy' });
    expect(runner.active()).toBe(2);
    await runner.stop();
    expect(mem.calls.run).toBe(2);
  });

  it('ignores a repeated request for a running or recently finished id', async () => {
    const { mem, runner, results, invoke, request } = setup({ runScript: async () => (await sleep(50), { stdout: 'once' }) });
    const req = request({});
    const p = invoke(req);
    runner.run(req);
    expect(await p).toMatchObject({ status: 'succeeded', stdout: 'once' });
    runner.run(req);
    await sleep(100);
    expect(results.filter((r) => r.id === req.id)).toHaveLength(1);
    expect(mem.calls.run).toBe(1);
  });

  it('cancels a run and reports cancelled exactly once', async () => {
    const { runner, results, resultOf, request } = setup(forever);
    const req = request({});
    const p = resultOf(req.id);
    runner.run(req);
    await sleep(10);
    runner.cancel(req.id);
    runner.cancel(req.id);
    runner.cancel('unknown-id');
    expect(await p).toMatchObject({ status: 'cancelled', exitCode: null });
    await sleep(20);
    await runner.whenIdle();
    expect(results.filter((r) => r.id === req.id)).toHaveLength(1);
    expect(runner.active()).toBe(0);
  });

  it('stop() cancels everything in flight and waits for every result', async () => {
    const { mem, runner, results, request } = setup(forever);
    for (let i = 0; i < 5; i++) runner.run(request({}));
    await runner.stop();
    expect(results.map((r) => r.status)).toEqual(Array(5).fill('cancelled'));
    expect(mem.containers()).toEqual([]);
    const late = request({});
    runner.run(late);
    expect(results.at(-1)).toMatchObject({ id: late.id, status: 'failed', reason: 'agent stopping' });
  });

  it('reports a missing image without running anything', async () => {
    const { mem, invoke, request } = setup();
    mem.images.add('machete/other:1');
    expect(await invoke(request({}))).toMatchObject({ status: 'failed', reason: 'image not found: machete/busybox:test' });
    expect(mem.calls.run).toBe(0);
  });

  it('reports a port that throws as an engine error and keeps serving', async () => {
    let n = 0;
    const { invoke, request } = setup({ runScript: () => (n++ === 0 ? Promise.reject(new Error('boom')) : { stdout: 'ok' }) });
    expect(await invoke(request({}))).toMatchObject({ status: 'failed', reason: 'engine error: boom' });
    expect(await invoke(request({}))).toMatchObject({ status: 'succeeded', stdout: 'ok' });
  });

  it('keeps a callback that throws from breaking the runner', async () => {
    const mem = createMemoryPort();
    let calls = 0;
    const runner = createInvocationRunner({
      port: mem,
      hostId: 'h',
      build: () => ({ name: 'x', body: { Image: 'i', Labels: {}, HostConfig: {} } }),
      onResult: () => {
        calls++;
        throw new Error('callback failed');
      },
    });
    runner.run({ id: 'a', tool: 't', version: 1, spec: ToolSpecSchema.parse({ image: 'machete/busybox:test' }), args: [], stdin: null, timeoutSeconds: 5, maxOutputBytes: 10 });
    await runner.stop();
    expect(calls).toBe(1);
  });

  it('shrinks output so the result frame always fits, even for output that JSON inflates 6×', () => {
    const base = { id: 'a', status: 'succeeded' as const, exitCode: 0, truncated: false, durationMs: 1, containerId: null, reason: null };
    // Each stream alone is within a quarter of the frame limit, yet together, JSON-escaped, they come to twice the limit.
    const quarter = MAX_FRAME_BYTES / 4;
    const r = fitResult({ ...base, stdout: '\0'.repeat(quarter), stderr: 'é'.repeat(quarter) });
    const bytes = Buffer.byteLength(JSON.stringify({ type: 'invocationResult', result: r }));
    expect(bytes).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(bytes).toBeGreaterThan(MAX_FRAME_BYTES / 2);
    expect(r.truncated).toBe(true);
    const small = { ...base, stdout: 'ok', stderr: '' };
    expect(fitResult(small)).toBe(small);
    expect(fitResult({ ...base, stdout: '😀'.repeat(quarter), stderr: '' }).stdout).not.toMatch(/[\uD800-\uDBFF]$/);
  });
});

describe('invocation runner against a real engine', () => {
  const socketPath = inject('dockerSocket');
  const image = inject('testImage');
  const hostId = `runner-${randomUUID().slice(0, 10)}`;
  const docker = new Docker({ socketPath });
  const port = createDockerodePort({ socketPath });
  let h: ReturnType<typeof harness>;
  let runner: InvocationRunner;
  let runs = 0;
  const counted: DockerPort = { ...port, run: (req) => (runs++, port.run(req)), create: (p) => (runs++, port.create(p)) };

  const invocationContainers = (host = hostId) =>
    docker.listContainers({ all: true, filters: { label: [`machete.host=${host}`, 'machete.kind=invocation'] } });

  beforeAll(async () => {
    h = harness(counted, { hostId, image, engineEndpoint: socketPath, allowedMounts: '/srv/allowed:ro' });
    runner = h.runner;
    await runner.start();
  });

  afterEach(async () => {
    // A result may arrive before its container's removal; the removal always follows.
    await runner.whenIdle();
    expect(runner.active()).toBe(0);
    expect(await invocationContainers()).toEqual([]);
  });

  afterAll(async () => {
    await runner.stop();
    // Exactly one result per id over the whole file.
    const ids = h.results.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('runs a tool and reports exit code 0 with its stdout', async () => {
    const r = await h.invoke(h.request({ command: ['echo', 'hello'] }));
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'hello\n', stderr: '', truncated: false, reason: null });
    expect(InvocationResultSchema.safeParse(r).success).toBe(true);
  });

  it('reports exit code 3 as failed with stdout and stderr apart', async () => {
    const r = await h.invoke(h.request({ command: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 3'] }));
    expect(r).toMatchObject({ status: 'failed', exitCode: 3, stdout: 'to-out\n', stderr: 'to-err\n', reason: null });
  });

  it('feeds stdin to the tool (echoed through cat)', async () => {
    const stdin = 'first line\nsecond «line» ✓\n';
    expect(await h.invoke(h.request({ command: ['cat'] }, { stdin }))).toMatchObject({ status: 'succeeded', stdout: stdin });
  });

  it('delivers args verbatim: spaces, quotes, $HOME, ; and newlines reach the tool untouched', async () => {
    const args = ['two words', `single ' and double " quotes`, '$HOME', '${PATH}', 'a;b', '; echo injected', 'line1\nline2', '|', '&&', ''];
    const r = await h.invoke(h.request({ command: ['printf', '%s|'] }, { args }));
    expect(r).toMatchObject({ status: 'succeeded', stdout: `${args.join('|')}|` });
  });

  it('kills a tool that outlives timeoutSeconds and reports timeout within ~2 s', async () => {
    const t0 = performance.now();
    const r = await h.invoke(h.request({ command: ['sleep', '30'] }, { timeoutSeconds: 1 }));
    expect(r).toMatchObject({ status: 'timeout', exitCode: null });
    expect(performance.now() - t0).toBeLessThan(2_500);
  });

  it('cancel() kills a running tool and reports cancelled', async () => {
    const req = h.request({ command: ['sh', '-c', 'echo before; sleep 30'] });
    const p = h.invoke(req);
    await sleep(800);
    const t0 = performance.now();
    runner.cancel(req.id);
    const r = await p;
    const ms = performance.now() - t0;
    console.info(`cancel → result in ${Math.round(ms)} ms (container killed and removed)`);
    expect(r).toMatchObject({ status: 'cancelled', exitCode: null });
    expect(ms).toBeLessThan(1_500);
  });

  it('truncates a flood at the cap with stdout exactly the cap and bounded memory', async () => {
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const r = await h.invoke(h.request({ command: ['sh', '-c', 'yes | head -c 200000000'], resources: { cpus: 2 } }, { timeoutSeconds: 60 }));
      expect(r).toMatchObject({ status: 'succeeded', truncated: true });
      expect(r.stdout.length).toBe(MIB);
      expect(peak - rss0).toBeLessThan(200 * MIB);
    } finally {
      clearInterval(sampler);
    }
  }, 90_000);

  it('refuses a mount outside the allowlist: failed with the reason, no container created', async () => {
    const before = runs;
    const r = await h.invoke(h.request({ command: ['true'], mounts: [{ source: '/etc', target: '/host-etc' }] }));
    expect(r).toMatchObject({ status: 'failed', exitCode: null, containerId: null });
    expect(r.reason).toMatch(/^refused: mounts\[0\]: /);
    const r2 = await h.invoke(h.request({ command: ['true'], mounts: [{ source: '/srv/elsewhere', target: '/x' }] }));
    expect(r2.reason).toMatch(/^refused: .*not in the host allowlist/);
    expect(runs).toBe(before);
  });

  it('reports a missing image as failed without creating anything', async () => {
    const before = runs;
    const r = await h.invoke(h.request({ image: 'machete/absent:1', command: ['true'] }));
    expect(r).toMatchObject({ status: 'failed', reason: 'image not found: machete/absent:1' });
    expect(runs).toBe(before);
  });

  it('runs invocations concurrently', async () => {
    const reqs = Array.from({ length: 4 }, (_, i) => h.request({ command: ['sh', '-c', `sleep 1; echo ${i}`] }));
    const t0 = performance.now();
    const rs = await Promise.all(reqs.map((r) => h.invoke(r)));
    expect(rs.map((r) => r.stdout)).toEqual(['0\n', '1\n', '2\n', '3\n']);
    expect(performance.now() - t0).toBeLessThan(4_000);
  });

  it('measures a trivial echo invocation end to end (p50 over 20 runs)', async () => {
    const ms: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const r = await h.invoke(h.request({ command: ['echo', 'hi'] }));
      ms.push(performance.now() - t0);
      expect(r.stdout).toBe('hi\n');
    }
    ms.sort((a, b) => a - b);
    console.info(`echo invocation end to end: p50 ${Math.round(ms[10]!)} ms, min ${Math.round(ms[0]!)} ms, max ${Math.round(ms[19]!)} ms`);
    expect(ms[10]).toBeLessThan(3_000);
  }, 60_000);

  it('start() removes leftover invocation containers of this host only, and reports them failed', async () => {
    const other = `${hostId}-other`;
    const make = async (host: string, kind: 'invocation' | 'replica', id: string) => {
      const spec = ToolSpecSchema.parse({ image, command: ['sleep', '300'] });
      const payload = buildCreatePayload({ id, tool: 'tool', version: 1, kind, revision: 0, desired: 'running', spec }, { hostId: host, allowedMounts: [], engineEndpoint: socketPath });
      const cid = await port.create(payload);
      await port.start(cid);
      return cid;
    };
    const leftover = await make(hostId, 'invocation', 'crashed-1');
    const stopped = await make(hostId, 'invocation', 'crashed-2');
    await port.stop(stopped, 0);
    const replica = await make(hostId, 'replica', 'replica-1');
    const foreign = await make(other, 'invocation', 'foreign-1');
    try {
      const fresh = harness(port, { hostId, image, engineEndpoint: socketPath });
      await fresh.runner.start();
      expect(await invocationContainers()).toEqual([]);
      expect((await invocationContainers(other)).map((c) => c.Id)).toEqual([foreign]);
      expect((await port.list(hostId)).map((c) => c.id)).toEqual([replica]);
      expect(fresh.results.map((r) => [r.id, r.status, r.containerId]).sort()).toEqual([
        ['crashed-1', 'failed', leftover],
        ['crashed-2', 'failed', stopped],
      ]);
      expect(fresh.results[0]?.reason).toMatch(/agent restarted/);
      await fresh.runner.stop();
    } finally {
      await Promise.all([replica, foreign].map((id) => port.remove(id)));
    }
  });

  it('stop() kills what is running and leaves no container behind', async () => {
    const local = harness(port, { hostId, image, engineEndpoint: socketPath });
    const reqs = [0, 1, 2].map(() => local.request({ command: ['sleep', '30'] }));
    for (const r of reqs) local.runner.run(r);
    await sleep(700);
    await local.runner.stop();
    expect(local.results.map((r) => r.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(local.runner.active()).toBe(0);
  });
});
