import { describe, expect, it } from 'vitest';
import { Labels, ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance, InvocationRequest, InvocationResult, ToolSpecInput } from '../../../protocol/src/index.ts';
import { createMemoryPort } from '../docker/memory.ts';
import type { MemoryPortOptions } from '../docker/memory.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import { createInvocationRunner } from './runner.ts';
import { createWarmPool, deathReason, execArgv } from './warm.ts';

// The warm pool's logic on the memory engine; the real-engine behaviour is in test/e2e/warm.test.ts.
const HOST = 'warm-host';
const IMAGE = 'machete/busybox:test';
const spec = (over: Partial<ToolSpecInput> = {}) => ToolSpecSchema.parse({ image: IMAGE, command: ['echo'], warm: 2, ...over });
const slot = (id: string, version = 1, over: Partial<ToolSpecInput> = {}, kind: DesiredInstance['kind'] = 'warm'): DesiredInstance => ({
  id, tool: 't', version, kind, revision: version, desired: 'running', spec: spec(over),
});
const request = (over: Partial<InvocationRequest> = {}): InvocationRequest => ({
  id: `v${Math.random().toString(16).slice(2, 10)}`, tool: 't', version: 1, spec: spec(), args: ['hi'], stdin: null, timeoutSeconds: 5, maxOutputBytes: 1024, ...over,
});

function setup(opts: MemoryPortOptions = {}) {
  const mem = createMemoryPort(opts);
  const ctx = { hostId: HOST, allowedMounts: [], engineEndpoint: 'memory://' };
  const pool = createWarmPool({ port: mem, hostId: HOST, build: (inst, nameSuffix) => buildCreatePayload(inst, { ...ctx, nameSuffix }), backoff: { initialMs: 50, maxMs: 50 }, resyncMs: 60_000 });
  const results = new Map<string, (r: InvocationResult) => void>();
  const runner = createInvocationRunner({
    port: mem,
    hostId: HOST,
    warm: pool,
    build: (req) => buildCreatePayload({ id: req.id, tool: req.tool, version: req.version, kind: 'invocation', revision: 0, desired: 'running', spec: req.spec }, { ...ctx, extraArgs: req.args }),
    onResult: (r) => results.get(r.id)?.(r),
  });
  const invoke = (req: InvocationRequest) => {
    const p = new Promise<InvocationResult>((resolve) => results.set(req.id, resolve));
    runner.run(req);
    return p;
  };
  const warm = () => mem.containers().filter((c) => c.labels[Labels.kind] === 'warm');
  return { mem, pool, runner, invoke, warm };
}

describe('warm pool (memory engine)', () => {
  it('keeps one started sandbox per warm slot and ignores other kinds', async () => {
    const { pool, warm } = setup();
    pool.start();
    pool.setDesired([slot('w1'), slot('w2'), slot('r1', 1, {}, 'replica')]);
    await pool.whenIdle();
    expect(pool.idle()).toBe(2);
    const cs = warm();
    expect(cs.map((c) => c.labels[Labels.instance]).sort()).toEqual(['w1', 'w2']);
    expect(cs.every((c) => c.state === 'running' && (c.body.Entrypoint as string[])[0] === 'sleep')).toBe(true);
    await pool.stop();
    expect(warm()).toEqual([]);
  });

  it('hands a sandbox out once, only for the same tool, version, spec and secrets, and refills the slot', async () => {
    const { pool, warm } = setup();
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    expect(pool.take(request({ version: 2 }))).toBeNull();
    expect(pool.take(request({ spec: spec({ env: { X: '1' } }) }))).toBeNull();
    expect(pool.take(request({ secrets: [{ name: 's', value: 'v', version: 1 }] }))).toBeNull();
    const sb = pool.take(request());
    expect(sb).not.toBeNull();
    expect(pool.take(request())).toBeNull();
    expect(warm()).toHaveLength(1); // the taken one lives until discarded
    await pool.discard(sb!, false);
    await pool.whenIdle();
    expect(pool.idle()).toBe(1);
    expect(warm().map((c) => c.id)).not.toContain(sb!.containerId);
    expect(warm()).toHaveLength(1);
    await pool.stop();
  });

  it('replaces stale sandboxes on a new version and removes them when the slots go', async () => {
    const { pool, warm } = setup();
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    const old = warm()[0]!.id;
    pool.setDesired([slot('w1', 2)]);
    await pool.whenIdle();
    pool.setDesired([slot('w1', 2)]); // the sweep that removes the orphaned v1 sandbox
    await pool.whenIdle();
    expect(warm().map((c) => [c.labels[Labels.version], c.id === old])).toEqual([['2', false]]);
    pool.setDesired([]);
    await pool.whenIdle();
    expect(warm()).toEqual([]);
    await pool.stop();
  });

  it('removes warm containers it does not own at start, whatever their state', async () => {
    const { mem, pool, warm } = setup();
    const leftover = await mem.create(buildCreatePayload(slot('w9'), { hostId: HOST, allowedMounts: [], engineEndpoint: 'memory://', nameSuffix: 'old' }));
    await mem.start(leftover);
    pool.start();
    await pool.whenIdle();
    expect(warm()).toEqual([]);
    await pool.stop();
  });

  it('reports why a slot cannot idle and backs off', async () => {
    const { mem, pool, warm } = setup();
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    mem.kill(warm()[0]!.id, 127); // docker-init could not exec `sleep`
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    expect(pool.reasons().get('w1')).toBe(deathReason(127));
    expect(pool.reasons().get('w1')).toMatch(/no runnable `sleep`/);
    await pool.stop();
  });
});

describe('warm pool background work (memory engine)', () => {
  it('defers refills and removals while warm runs are in flight, then catches up', async () => {
    const { mem, pool, warm } = setup();
    pool.start();
    pool.setDesired([slot('w1'), slot('w2'), slot('w3')]);
    await pool.whenIdle();
    const creates = mem.calls.create;
    const a = pool.take(request())!;
    const b = pool.take(request())!;
    const gone = pool.discard(a, false);
    await new Promise((r) => setTimeout(r, 20));
    // b still runs: a is not removed and neither slot refilled, so the engine serves b alone.
    expect([mem.calls.create - creates, warm().length]).toEqual([0, 3]);
    void pool.discard(b, false);
    await gone;
    await pool.whenIdle();
    expect([mem.calls.create - creates, warm().length, pool.idle()]).toEqual([2, 3, 3]);
    await pool.stop();
  });

  it('refills an emptied pool even while a long run goes on', async () => {
    const { mem, pool } = setup();
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    const creates = mem.calls.create;
    pool.take(request());
    await new Promise((r) => setTimeout(r, 400));
    expect(mem.calls.create - creates).toBe(1);
    expect(pool.idle()).toBe(1);
    await pool.stop();
  });
});

describe('invocations with a warm pool (memory engine)', () => {
  it('execs in a warm sandbox, discards it, and runs cold when none is free', async () => {
    const { mem, pool, invoke, warm, runner } = setup({ createLatencyMs: 50 }); // a refill takes a while
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    const sandbox = warm()[0]!.id;
    const first = await invoke(request({ stdin: 'in' }));
    expect(first).toMatchObject({ status: 'succeeded', stdout: 'in', containerId: sandbox });
    expect([mem.calls.exec, mem.calls.run]).toEqual([1, 0]);
    const second = await invoke(request()); // the slot is still refilling
    expect(second.containerId).not.toBe(sandbox);
    expect(mem.calls.run).toBe(1);
    await pool.whenIdle();
    expect(warm().map((c) => c.id)).not.toContain(sandbox);
    await runner.stop();
    await pool.stop();
  });

  it('runs cold when the sandbox died before the exec, and kills the sandbox on timeout', async () => {
    const { mem, pool, invoke, warm } = setup({ runScript: (r) => (r.payload.body.Cmd as string[]).includes('slow') ? new Promise(() => {}) : { stdout: 'ok' } });
    pool.start();
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    mem.kill(warm()[0]!.id, 137);
    const r = await invoke(request());
    expect(r).toMatchObject({ status: 'succeeded', stdout: 'ok' });
    expect([mem.calls.exec, mem.calls.run]).toEqual([1, 1]);
    await new Promise((res) => setTimeout(res, 80)); // past the backoff
    pool.setDesired([slot('w1')]);
    await pool.whenIdle();
    const sandbox = warm().find((c) => c.state === 'running')!.id;
    const slow = await invoke(request({ args: ['slow'], timeoutSeconds: 1 }));
    expect(slow).toMatchObject({ status: 'timeout', containerId: sandbox });
    await pool.whenIdle();
    expect(warm().map((c) => c.id)).not.toContain(sandbox);
    await pool.stop();
  });

  it('builds the argv Docker would run: image ENTRYPOINT, then the payload Cmd or the image CMD', () => {
    const img = { entrypoint: ['/entry'], cmd: ['default'] };
    expect(execArgv(img, { name: 'x', body: { Cmd: ['a', 'b c'], Labels: {}, HostConfig: {} } })).toEqual(['/entry', 'a', 'b c']);
    expect(execArgv(img, { name: 'x', body: { Labels: {}, HostConfig: {} } })).toEqual(['/entry', 'default']);
    expect(execArgv(img, { name: 'x', body: { Entrypoint: ['/other'], Labels: {}, HostConfig: {} } })).toEqual(['/other']);
  });
});
