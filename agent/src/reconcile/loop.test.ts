import { afterEach, describe, expect, it, vi } from 'vitest';
import { Labels, ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance, InstanceStatus, ToolSpecInput } from '../../../protocol/src/index.ts';
import { createMemoryPort } from '../docker/memory.ts';
import type { MemoryPort, MemoryPortOptions } from '../docker/memory.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import type { CreatePayload, DockerPort } from '../docker/port.ts';
import { createReconciler } from './loop.ts';
import type { Reconciler, ReconcilerDeps } from './loop.ts';

const HOST = 'h1';
const IMAGE = 'machete/busybox:test';

function inst(id: string, o: Partial<Omit<DesiredInstance, 'spec'>> & { spec?: Partial<ToolSpecInput> } = {}): DesiredInstance {
  const { spec, ...rest } = o;
  return { id, tool: 'echo', version: 1, kind: 'replica', revision: 1, desired: 'running', ...rest, spec: ToolSpecSchema.parse({ image: IMAGE, ...spec }) };
}
const many = (n: number, o: Parameters<typeof inst>[1] = {}) => Array.from({ length: n }, (_, i) => inst(`i${String(i).padStart(3, '0')}`, o));

/** Just the labels the loop reads back; the real payload is payload.ts's business. */
function build(inst: DesiredInstance, name = `machete-${inst.tool}-${inst.id}`): CreatePayload {
  const labels = {
    [Labels.managed]: 'true',
    [Labels.host]: HOST,
    [Labels.tool]: inst.tool,
    [Labels.instance]: inst.id,
    [Labels.version]: String(inst.version),
    [Labels.revision]: String(inst.revision),
    [Labels.kind]: inst.kind,
  };
  return { name, body: { Image: inst.spec.image, Labels: labels, HostConfig: {} } };
}

const live: Reconciler[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((r) => r.stop()));
});

interface Setup {
  /** The engine the test inspects; `port` may wrap it. */
  mem?: MemoryPort;
  port?: DockerPort;
  portOpts?: MemoryPortOptions;
  deps?: Partial<ReconcilerDeps>;
}

function setup(o: Setup = {}) {
  const mem = o.mem ?? createMemoryPort(o.portOpts);
  const sent: { changed: InstanceStatus[]; revision: number }[] = [];
  const log = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
  const r = createReconciler({
    port: o.port ?? mem,
    hostId: HOST,
    build: (i) => build(i),
    onStatus: (changed, revision) => sent.push({ changed, revision }),
    log,
    resyncMs: 60_000,
    ...o.deps,
  });
  live.push(r);
  r.start();
  /** The last status sent per instance. */
  const latest = () => {
    const m = new Map<string, InstanceStatus>();
    for (const f of sent) for (const s of f.changed) m.set(s.id, s);
    return m;
  };
  const byInstance = (id: string) => mem.containers().filter((c) => c.labels[Labels.instance] === id);
  return { mem, r, sent, log, latest, byInstance };
}

async function until(cond: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('reconcile loop', () => {
  it('converges N instances to running containers and reports them with the applied revision', async () => {
    const { mem, r, sent, latest } = setup();
    r.setDesired(many(25), 7, true);
    await r.whenIdle();
    expect(mem.containers().filter((c) => c.state === 'running')).toHaveLength(25);
    expect([...latest().values()].every((s) => s.state === 'running' && s.version === 1 && s.containerId)).toBe(true);
    expect(sent.at(-1)?.revision).toBe(7);
  });

  it('replaces a killed container (exit 137) and counts the restart', async () => {
    const { mem, r, latest, byInstance } = setup();
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    const first = byInstance('a')[0]!;
    mem.kill(first.id, 137);
    await r.whenIdle();
    const now = byInstance('a');
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(first.id);
    expect(now[0]!.state).toBe('running');
    expect(latest().get('a')).toMatchObject({ state: 'running', restarts: 1, containerId: now[0]!.id });
  });

  it('backs off a crash-looping instance, reporting failed with "restarting in Ns"', async () => {
    const { mem, r, latest, byInstance } = setup({ deps: { restartBackoff: { initialMs: 400 } } });
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    mem.kill(byInstance('a')[0]!.id, 1);
    await r.whenIdle(); // first restart is immediate
    mem.kill(byInstance('a')[0]!.id, 1);
    await r.whenIdle();
    expect(latest().get('a')).toMatchObject({ state: 'failed', exitCode: 1, reason: 'restarting in 1s', restarts: 1 });
    await until(() => latest().get('a')?.state === 'running');
    expect(latest().get('a')).toMatchObject({ restarts: 2, reason: null });
  });

  it('keeps a container that exited 0 under on-failure and reports it exited', async () => {
    const { mem, r, latest, byInstance } = setup();
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    mem.kill(byInstance('a')[0]!.id, 0);
    await r.whenIdle();
    expect(byInstance('a')[0]).toMatchObject({ state: 'exited', exitCode: 0 });
    expect(latest().get('a')).toMatchObject({ state: 'exited', exitCode: 0, restarts: 0 });
  });

  it('replaces a container on version change, new one first when names differ', async () => {
    const order: string[] = [];
    const mem = createMemoryPort();
    const port: DockerPort = {
      ...mem,
      create: (p) => (order.push('create'), mem.create(p)),
      stop: (id, t) => (order.push('stop'), mem.stop(id, t)),
      remove: (id) => (order.push('remove'), mem.remove(id)),
    };
    const { r, latest } = setup({ mem, port, deps: { build: (i) => build(i, `machete-${i.id}-v${i.version}`) } });
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    order.length = 0;
    r.setDesired([inst('a', { version: 2, revision: 2 })], 2, true);
    await r.whenIdle();
    expect(order).toEqual(['create', 'stop', 'remove']);
    const cs = mem.containers();
    expect(cs).toHaveLength(1);
    expect(cs[0]).toMatchObject({ state: 'running', labels: { [Labels.version]: '2' } });
    expect(latest().get('a')).toMatchObject({ state: 'running', version: 2, restarts: 0 });
  });

  it('replaces a same-named container by removing the old one first', async () => {
    const { mem, r, byInstance } = setup();
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    r.setDesired([inst('a', { version: 2, revision: 2 })], 2, true);
    await r.whenIdle();
    expect(byInstance('a')).toMatchObject([{ state: 'running', labels: { [Labels.version]: '2' } }]);
    expect(mem.calls.remove).toBe(1);
  });

  it('scales down by removing the instances no longer desired', async () => {
    const { mem, r } = setup();
    r.setDesired(many(5), 1, true);
    await r.whenIdle();
    r.setDesired(many(2), 2, true);
    await r.whenIdle();
    expect(mem.containers().map((c) => c.labels[Labels.instance]).sort()).toEqual(['i000', 'i001']);
  });

  it('stops the container of a desired stopped instance and reports it exited', async () => {
    const { mem, r, latest } = setup();
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    r.setDesired([inst('a', { desired: 'stopped', revision: 2 })], 2, true);
    await r.whenIdle();
    expect(mem.containers()).toMatchObject([{ state: 'exited' }]);
    expect(latest().get('a')).toMatchObject({ state: 'exited' });
  });

  it('never removes orphans without the full desired state, then does once it is full', async () => {
    const { mem, r } = setup();
    r.setDesired(many(3), 1, true);
    await r.whenIdle();
    r.markDisconnected();
    r.trigger('test');
    r.setDesired([], 2, false);
    await r.whenIdle();
    expect(mem.containers()).toHaveLength(3);
    expect(mem.calls.remove).toBe(0);
    r.setDesired([], 2, true);
    await r.whenIdle();
    expect(mem.containers()).toHaveLength(0);
  });

  it('adopts containers found at start and does not duplicate them', async () => {
    const mem = createMemoryPort();
    await mem.start(await mem.create(build(inst('a'))));
    const { r } = setup({ mem });
    r.setDesired([inst('a')], 1, true);
    await r.whenIdle();
    expect(mem.calls.create).toBe(1);
  });

  it('coalesces many triggers into one extra pass', async () => {
    const { r } = setup();
    await r.whenIdle();
    const before = r.passes();
    for (let i = 0; i < 100; i++) r.trigger('burst'); // the first starts a pass, the rest queue one more
    await r.whenIdle();
    expect(r.passes() - before).toBe(2);
    r.setDesired(many(3), 1, true); // starts a pass
    for (let i = 0; i < 100; i++) r.trigger('burst'); // all land during it
    await r.whenIdle();
    expect(r.passes() - before).toBeLessThanOrEqual(5); // + pass, queued pass, event-debounced pass
  });

  it('backs off after engine errors (100 ms doubling), logs once, then recovers', async () => {
    const mem = createMemoryPort();
    const times: number[] = [];
    let failures = 3;
    const port: DockerPort = {
      ...mem,
      list: async (h) => {
        times.push(Date.now());
        if (failures-- > 0) throw new Error('engine down');
        return mem.list(h);
      },
    };
    const { r, log, latest } = setup({ mem, port });
    r.setDesired([inst('a')], 1, true);
    await until(() => latest().get('a')?.state === 'running');
    const gaps = times.slice(1, 4).map((t, i) => t - times[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(90);
    expect(gaps[1]).toBeGreaterThanOrEqual(190);
    expect(gaps[2]).toBeGreaterThanOrEqual(390);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.info).toHaveBeenCalledWith(expect.objectContaining({ failedPasses: 3 }), 'reconcile recovered');
  });

  it('reports a policy refusal as failed with its reason and never calls create', async () => {
    const ctx = { hostId: HOST, allowedMounts: [], engineEndpoint: '/var/run/docker.sock' };
    const { mem, r, latest } = setup({ deps: { build: (i) => buildCreatePayload(i, ctx) } });
    r.setDesired([inst('a', { spec: { mounts: [{ source: '/srv/data', target: '/data' }] } })], 1, true);
    await r.whenIdle();
    expect(mem.calls.create).toBe(0);
    expect(latest().get('a')).toMatchObject({ state: 'failed', containerId: null });
    expect(latest().get('a')?.reason).toMatch(/^refused: /);
  });

  it('reports a missing image without creating, asking once per image per pass', async () => {
    const { mem, r, latest } = setup();
    mem.images.add('other/image:1');
    await r.whenIdle();
    const before = r.passes();
    r.setDesired(many(3), 1, true);
    await r.whenIdle();
    r.trigger('again');
    await r.whenIdle();
    expect(mem.calls.create).toBe(0);
    expect(mem.calls.imageExists).toBe(r.passes() - before);
    expect(mem.calls.imageExists).toBe(2);
    expect(latest().get('i001')).toMatchObject({ state: 'failed', reason: `image not found: ${IMAGE}` });
  });

  it('sends statuses only when they change', async () => {
    const { mem, r, sent, byInstance } = setup();
    r.setDesired(many(3), 1, true);
    await r.whenIdle();
    const count = sent.length;
    for (let i = 0; i < 3; i++) {
      r.trigger('resync');
      await r.whenIdle();
    }
    expect(sent).toHaveLength(count);
    mem.kill(byInstance('i001')[0]!.id, 137);
    await r.whenIdle();
    expect(sent.slice(count).flatMap((f) => f.changed.map((s) => s.id))).toEqual(expect.arrayContaining(['i001']));
    expect(sent.slice(count).flatMap((f) => f.changed.map((s) => s.id)).every((id) => id === 'i001')).toBe(true);
  });

  it('resends every status after a reconnect, but not on each later full state', async () => {
    const { r, sent } = setup();
    r.setDesired(many(3), 1, true);
    await r.whenIdle();
    r.setDesired(many(3), 2, true); // e.g. a delta applied on the same connection
    await r.whenIdle();
    expect(sent.at(-1)).toEqual({ changed: [], revision: 2 });
    r.markDisconnected();
    r.setDesired(many(3), 2, true);
    await r.whenIdle();
    expect(sent.at(-1)?.changed.map((s) => s.id)).toEqual(['i000', 'i001', 'i002']);
  });

  it('acknowledges a new revision even when no status changed', async () => {
    const { r, sent } = setup();
    r.setDesired(many(2), 1, false);
    await r.whenIdle();
    r.setDesired(many(2), 2, false);
    await r.whenIdle();
    expect(sent.at(-1)).toEqual({ changed: [], revision: 2 });
  });

  it('keeps engine operations within the concurrency bound', async () => {
    const mem = createMemoryPort({ createLatencyMs: 15 });
    let inFlight = 0;
    let max = 0;
    const port: DockerPort = {
      ...mem,
      create: async (p) => {
        max = Math.max(max, ++inFlight);
        try {
          return await mem.create(p);
        } finally {
          inFlight--;
        }
      },
    };
    const { r } = setup({ mem, port, deps: { concurrency: 4 } });
    r.setDesired(many(30), 1, true);
    await r.whenIdle();
    expect(mem.containers()).toHaveLength(30);
    expect(max).toBe(4);
  });

  it('resubscribes to engine events after the stream fails', async () => {
    const mem = createMemoryPort();
    let subscriptions = 0;
    const port: DockerPort = {
      ...mem,
      events: (h, onEvent, onError) => {
        const off = mem.events(h, onEvent, onError);
        if (++subscriptions === 1) setTimeout(() => onError(new Error('stream closed')), 5);
        return off;
      },
    };
    const { r, log, byInstance } = setup({ mem, port });
    r.setDesired([inst('a')], 1, true);
    await until(() => subscriptions === 2);
    await r.whenIdle();
    mem.kill(byInstance('a')[0]!.id, 137);
    await until(() => byInstance('a')[0]?.state === 'running');
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it('runs a pass on every resync tick', async () => {
    const { r } = setup({ deps: { resyncMs: 20 } });
    await r.whenIdle();
    const before = r.passes();
    await until(() => r.passes() >= before + 3);
  });

  it('stop() waits for the running pass, unsubscribes and ignores later triggers', async () => {
    const { mem, r } = setup({ portOpts: { createLatencyMs: 30 } });
    await r.whenIdle();
    r.setDesired(many(2), 1, true);
    await r.stop();
    expect(mem.containers().every((c) => c.state === 'running')).toBe(true);
    const passes = r.passes();
    r.trigger('late');
    mem.kill(mem.containers()[0]!.id, 1);
    await new Promise((res) => setTimeout(res, 50));
    expect(r.passes()).toBe(passes);
  });
});
