import { describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance } from '../../../protocol/src/index.ts';
import { createMemoryPort } from '../docker/memory.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import type { EngineEvent } from '../docker/port.ts';
import { createReconciler } from './loop.ts';

// Which engine events wake the reconcile loop: not those of invocation containers (the runner's
// alone), nor exec events (a warm run): both would only make it list the engine mid-run.
const HOST = 'ev-host';
const inst = (id: string, kind: DesiredInstance['kind']): DesiredInstance => ({
  id, tool: 'ev', version: 1, kind, revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image: 'machete/busybox:test' }),
});
const ctx = { hostId: HOST, allowedMounts: [], engineEndpoint: 'memory://' };
const settle = () => new Promise((r) => setTimeout(r, 80));

describe('reconcile loop wake-ups', () => {
  it('ignores invocation containers and exec events, and still reacts to replicas', async () => {
    const mem = createMemoryPort();
    let emit: ((e: EngineEvent) => void) | null = null;
    const events = mem.events.bind(mem);
    mem.events = (hostId, onEvent, onError) => ((emit = onEvent), events(hostId, onEvent, onError));
    const r = createReconciler({ port: mem, hostId: HOST, build: (i) => buildCreatePayload(i, ctx), onStatus: () => {}, resyncMs: 60_000 });
    r.start();
    r.setDesired([], 1, true);
    await settle();
    await r.whenIdle();
    const passes = r.passes();
    const id = await mem.create(buildCreatePayload(inst('v1', 'invocation'), ctx));
    await mem.start(id);
    await mem.remove(id);
    emit!({ containerId: 'abc', action: 'exec_start: echo hi', instanceId: 'w1', kind: 'warm' });
    await settle();
    expect(r.passes()).toBe(passes);
    await mem.create(buildCreatePayload(inst('r1', 'replica'), ctx));
    await settle();
    expect(r.passes()).toBeGreaterThan(passes);
    await r.stop();
  });
});
