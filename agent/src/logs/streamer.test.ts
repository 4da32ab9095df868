import { describe, expect, it } from 'vitest';
import { LOG_CHUNK_BYTES, type AgentFrame, type LogsRequest } from '../../../protocol/src/index.ts';
import { createMemoryPort } from '../docker/memory.ts';
import type { CreatePayload } from '../docker/port.ts';
import { LiveOutput } from '../invoke/live.ts';
import { Outbox } from './outbox.ts';
import { LogStreamer, pickContainer } from './streamer.ts';

const HOST = 'h1';
const sid = (n: number) => `l${n.toString(16).padStart(24, '0')}`;
const tick = () => new Promise((r) => setTimeout(r, 5));

function replica(instanceId: string, version = 1): CreatePayload {
  const labels = { 'machete.managed': 'true', 'machete.host': HOST, 'machete.instance': instanceId, 'machete.tool': 't', 'machete.version': String(version), 'machete.revision': '1', 'machete.kind': 'replica' };
  return { name: `t-${instanceId}-${version}`, body: { Image: 'x', Labels: labels, HostConfig: {} } };
}

function setup(opts: { connected?: () => boolean; maxStreams?: number } = {}) {
  const port = createMemoryPort();
  const sent: AgentFrame[] = [];
  const lives = new Map<string, LiveOutput>();
  const streamer = new LogStreamer({
    port,
    hostId: HOST,
    live: (id) => lives.get(id),
    send: (f) => (opts.connected?.() ?? true) && (sent.push(f), true),
    ...(opts.maxStreams ? { maxStreams: opts.maxStreams } : {}),
  });
  const req = (n: number, over: Partial<LogsRequest> = {}): LogsRequest => ({ type: 'logs', streamId: sid(n), target: 'instance', id: 'i1', containerId: null, follow: false, tail: null, since: null, window: 1024, ...over });
  const text = (n: number) => sent.flatMap((f) => (f.type === 'logChunk' && f.streamId === sid(n) ? [f.data] : [])).join('');
  const endOf = (n: number) => sent.find((f) => f.type === 'logEnd' && f.streamId === sid(n));
  return { port, sent, lives, streamer, req, text, endOf };
}

describe('log streamer (memory engine)', () => {
  it('sends the backlog of the instance container, then ends', async () => {
    const t = setup();
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    t.port.writeLog(id, 'stdout', 'one\n');
    t.port.writeLog(id, 'stderr', 'oops\n');
    t.port.writeLog(id, 'stdout', 'two\n');
    t.streamer.open(t.req(1));
    await tick();
    expect(t.text(1)).toBe('one\noops\ntwo\n');
    expect(t.sent.filter((f) => f.type === 'logChunk' && f.data).map((f) => f.type === 'logChunk' && f.stream)).toEqual(['stdout', 'stderr', 'stdout']);
    expect(t.endOf(1)).toMatchObject({ code: null, reason: 'end of log' });
    expect(t.streamer.active()).toBe(0);
    expect(t.streamer.engineStreams()).toBe(0);
  });

  it('honours tail, follows new output and ends when the container stops', async () => {
    const t = setup();
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    for (const l of ['a\n', 'b\n', 'c\n']) t.port.writeLog(id, 'stdout', l);
    t.streamer.open(t.req(1, { follow: true, tail: 1 }));
    await tick();
    expect(t.text(1)).toBe('c\n');
    t.port.writeLog(id, 'stdout', 'd\n');
    await tick();
    expect(t.text(1)).toBe('c\nd\n');
    expect(t.endOf(1)).toBeUndefined();
    await t.port.stop(id, 1);
    await tick();
    expect(t.endOf(1)).toMatchObject({ code: null, reason: 'container stopped' });
    expect(t.streamer.engineStreams()).toBe(0);
  });

  it('stops at the window, pauses the engine read, and resumes on credit', async () => {
    const t = setup();
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    for (let i = 0; i < 8; i++) t.port.writeLog(id, 'stdout', 'x'.repeat(500));
    t.streamer.open(t.req(1, { window: 1024 }));
    await tick();
    // 1024 bytes of credit: three 500-byte entries go (the third overdraws), then the read pauses.
    expect(t.text(1).length).toBe(1500);
    expect(t.endOf(1)).toBeUndefined();
    t.streamer.credit(sid(1), 1500);
    await tick();
    expect(t.text(1).length).toBeGreaterThanOrEqual(3000);
    t.streamer.credit(sid(1), 100_000);
    await tick();
    expect(t.text(1).length).toBe(4000);
    expect(t.endOf(1)).toMatchObject({ code: null });
  });

  it('cancel closes the engine stream; later credit and unknown ids are ignored', async () => {
    const t = setup();
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    t.streamer.open(t.req(1, { follow: true }));
    await tick();
    expect(t.port.openLogStreams()).toBe(1);
    expect(t.streamer.engineStreams()).toBe(1);
    expect(t.sent).toEqual([{ type: 'logChunk', streamId: sid(1), stream: 'stdout', data: '' }]); // the open acknowledged
    t.sent.length = 0;
    t.streamer.cancel(sid(1));
    expect(t.port.openLogStreams()).toBe(0);
    expect(t.streamer.engineStreams()).toBe(0);
    t.streamer.credit(sid(1), 5000);
    t.streamer.credit(sid(9), 5000);
    t.streamer.cancel(sid(9));
    t.port.writeLog(id, 'stdout', 'after\n');
    await tick();
    expect(t.sent).toEqual([]);
  });

  it('answers not_found for an instance without a container here, busy past the cap', async () => {
    const t = setup({ maxStreams: 1 });
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    t.streamer.open(t.req(1, { id: 'other' }));
    await tick();
    expect(t.endOf(1)).toMatchObject({ code: 'not_found' });
    t.streamer.open(t.req(2, { follow: true }));
    t.streamer.open(t.req(3, { follow: true }));
    await tick();
    expect(t.endOf(3)).toMatchObject({ code: 'busy' });
    expect(t.streamer.active()).toBe(1);
    t.streamer.closeAll();
    expect(t.streamer.active()).toBe(0);
    expect(t.port.openLogStreams()).toBe(0);
  });

  it('streams a running invocation live from its capped buffers and reports the drop past the cap', async () => {
    const t = setup();
    const live = new LiveOutput(10);
    t.lives.set('v1', live);
    const sinks = live.sinks();
    sinks.stdout.write(Buffer.from('early\n'));
    t.streamer.open(t.req(1, { target: 'invocation', id: 'v1', follow: true }));
    await tick();
    expect(t.text(1)).toBe('early\n');
    sinks.stderr.write(Buffer.from('warn\n'));
    sinks.stdout.write(Buffer.from('late and long\n'));
    await tick();
    expect(t.text(1)).toBe('early\nwarn\nlate');
    expect(t.endOf(1)).toBeUndefined();
    live.finish();
    await tick();
    const drop = t.sent.find((f) => f.type === 'logChunk' && f.dropped);
    expect(drop).toMatchObject({ stream: 'stdout', dropped: 10 });
    expect(t.endOf(1)).toMatchObject({ code: null, reason: 'invocation finished' });
  });

  it('without follow, a running invocation gives what was captured so far', async () => {
    const t = setup();
    const live = new LiveOutput(1000);
    t.lives.set('v1', live);
    live.sinks().stdout.write(Buffer.from('so far\n'));
    t.streamer.open(t.req(1, { target: 'invocation', id: 'v1' }));
    await tick();
    expect(t.text(1)).toBe('so far\n');
    expect(t.endOf(1)).toMatchObject({ reason: 'end of output so far' });
    t.streamer.open(t.req(2, { target: 'invocation', id: 'gone' }));
    expect(t.endOf(2)).toMatchObject({ code: 'not_found' });
  });

  it('drops a stream whose connection is gone', async () => {
    let up = true;
    const t = setup({ connected: () => up });
    const id = await t.port.create(replica('i1'));
    await t.port.start(id);
    t.streamer.open(t.req(1, { follow: true }));
    await tick();
    up = false;
    t.port.writeLog(id, 'stdout', 'lost\n');
    await tick();
    expect(t.streamer.active()).toBe(0);
    expect(t.port.openLogStreams()).toBe(0);
  });
});

describe('outbox and container choice', () => {
  it('keeps a UTF-8 character split across reads whole and counts credit in encoded bytes', async () => {
    const frames: string[] = [];
    const o = new Outbox(sid(1), 100, (f) => frames.push(f.data));
    const euro = Buffer.from('€', 'utf8');
    o.push('stdout', euro.subarray(0, 1));
    await tick();
    o.push('stdout', euro.subarray(1));
    await tick();
    expect(frames).toEqual(['€']);
    o.push('stdout', Buffer.from('x'.repeat(97)));
    expect(o.hasRoom()).toBe(false); // 3 + 97 = 100 bytes used
    await tick();
    o.push('stdout', Buffer.from('y'));
    await tick();
    expect(frames.join('')).toBe(`€${'x'.repeat(97)}`);
    o.grant(1);
    expect(frames.at(-1)).toBe('y');
  });

  it('merges many small reads of one stream into few chunks, never past LOG_CHUNK_BYTES', async () => {
    const frames: { stream: string; data: string }[] = [];
    const o = new Outbox(sid(1), 1024 * 1024, (f) => frames.push(f));
    for (let i = 0; i < 1000; i++) o.push('stdout', Buffer.from(`line-${String(i).padStart(33, '0')}\n`)); // 39 bytes each
    o.push('stderr', Buffer.from('err\n'));
    o.push('stdout', Buffer.from('last\n'));
    await tick();
    expect(frames.map((f) => f.stream)).toEqual(['stdout', 'stdout', 'stdout', 'stderr', 'stdout']);
    expect(frames.every((f) => Buffer.byteLength(f.data) <= LOG_CHUNK_BYTES)).toBe(true);
    expect(frames.slice(0, 3).map((f) => f.data).join('')).toHaveLength(39_000);
    expect(frames.at(-1)!.data).toBe('last\n');
  });

  it('prefers the container the server named, then the running one, then the newest version', () => {
    const c = (id: string, state: string, version: number, kind: 'replica' | 'invocation' = 'replica') => ({ id, name: id, instanceId: 'i1', tool: 't', version, revision: 1, kind, state, exitCode: null, labels: {} });
    const found = [c('old', 'exited', 1), c('new', 'exited', 3), c('run', 'running', 2), c('inv', 'running', 9, 'invocation')];
    expect(pickContainer(found, 'i1', 'old')?.id).toBe('old');
    expect(pickContainer(found, 'i1', 'missing')?.id).toBe('run');
    expect(pickContainer(found.filter((x) => x.id !== 'run'), 'i1', null)?.id).toBe('new');
    expect(pickContainer(found, 'i2', null)).toBeUndefined();
  });
});
