import { describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import { createMemoryPort } from './memory.ts';
import { buildCreatePayload } from './payload.ts';
import type { EngineEvent } from './port.ts';

const payload = (id: string, hostId = 'h1') =>
  buildCreatePayload(
    { id, tool: 'echoer', version: 2, kind: 'replica', revision: 5, desired: 'running', spec: ToolSpecSchema.parse({ image: 'machete/busybox:test' }) },
    { hostId, allowedMounts: [], engineEndpoint: '/var/run/docker.sock' },
  );

describe('createMemoryPort', () => {
  it('creates, starts, lists, kills, stops and removes like an engine', async () => {
    const port = createMemoryPort();
    const events: EngineEvent[] = [];
    const unsubscribe = port.events('h1', (e) => events.push(e), () => {});

    const id = await port.create(payload('a'));
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await port.create(payload('other', 'h2'));
    expect(await port.list('h1')).toMatchObject([{ id, name: 'machete-echoer-a-v2', instanceId: 'a', tool: 'echoer', version: 2, revision: 5, kind: 'replica', state: 'created', exitCode: null }]);

    await port.start(id);
    expect((await port.list('h1'))[0]).toMatchObject({ state: 'running', exitCode: null });
    port.kill(id, 3);
    expect((await port.list('h1'))[0]).toMatchObject({ state: 'exited', exitCode: 3 });

    await port.stop(id, 10);
    await port.remove(id);
    await port.remove(id);
    expect(await port.list('h1')).toEqual([]);
    expect(events.map((e) => e.action)).toEqual(['create', 'start', 'die', 'destroy']);
    expect(events.every((e) => e.containerId === id && e.instanceId === 'a')).toBe(true);

    unsubscribe();
    await port.create(payload('b'));
    expect(events).toHaveLength(4);
    expect(port.calls).toMatchObject({ create: 3, start: 1, stop: 1, remove: 2, list: 4, events: 1 });
  });

  it('refuses a second container with the same name', async () => {
    const port = createMemoryPort();
    await port.create(payload('a'));
    await expect(port.create(payload('a'))).rejects.toMatchObject({ statusCode: 409 });
  });

  it('reports the configured capacity and snapshots containers', async () => {
    const port = createMemoryPort({ cpus: 8, memoryMb: 1024 });
    expect(await port.info()).toMatchObject({ cpus: 8, memoryMb: 1024 });
    await port.create(payload('a'));
    const snap = port.containers();
    snap[0]!.state = 'running';
    expect(port.containers()[0]?.state).toBe('created');
  });

  describe('run', () => {
    const req = (o: { stdin?: string | null; timeoutMs?: number; max?: number; signal?: AbortSignal } = {}) => ({
      payload: payload(`inv-${Math.random().toString(36).slice(2, 8)}`),
      stdin: o.stdin ?? null,
      timeoutMs: o.timeoutMs ?? 5_000,
      maxOutputBytes: o.max ?? 1024,
      signal: o.signal ?? new AbortController().signal,
    });

    it('echoes stdin to stdout by default and removes its container', async () => {
      const port = createMemoryPort();
      const r = await port.run(req({ stdin: 'hello' }));
      expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'hello', stderr: '', truncated: false, reason: null });
      expect(r.containerId).toMatch(/^[0-9a-f]{64}$/);
      expect(port.containers()).toEqual([]);
      expect(port.calls.run).toBe(1);
    });

    it('runs a script, shows the container while it runs, and caps the output', async () => {
      let seen = 0;
      const port = createMemoryPort({
        runScript: () => {
          seen = port.containers().length;
          return { exitCode: 3, stdout: 'x'.repeat(50), stderr: 'err' };
        },
      });
      expect(await port.run(req({ max: 10 }))).toMatchObject({ status: 'failed', exitCode: 3, stdout: 'x'.repeat(10), stderr: 'err', truncated: true });
      expect(seen).toBe(1);
      expect(port.containers()).toEqual([]);
    });

    it('honours the timeout and the abort signal over a slow script', async () => {
      const port = createMemoryPort({ runScript: () => new Promise(() => {}) });
      expect(await port.run(req({ timeoutMs: 20 }))).toMatchObject({ status: 'timeout', exitCode: null });
      const ac = new AbortController();
      const running = port.run(req({ signal: ac.signal }));
      ac.abort();
      expect(await running).toMatchObject({ status: 'cancelled', exitCode: null });
      expect(port.containers()).toEqual([]);
    });
  });
});
