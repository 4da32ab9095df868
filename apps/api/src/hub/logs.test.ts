import { describe, expect, it } from 'vitest';
import type { LogChunk, LogEnd, ServerFrame } from '../../../../protocol/src/index.ts';
import { MacheteError } from '../errors.ts';
import { QueueFeed, StaticFeed } from '../services/logFeed.ts';
import { LogRelay, MAX_LOG_STREAMS_PER_HOST } from './logs.ts';

const WINDOW = 4096;
const req = { target: 'instance' as const, id: 'i1', containerId: null, follow: true, tail: null, since: null };

function setup(connected = new Set(['h1', 'h2'])) {
  const sent: { hostId: string; frame: ServerFrame }[] = [];
  const relay = new LogRelay((hostId, frame) => connected.has(hostId) && (sent.push({ hostId, frame }), true), WINDOW);
  const lastOpen = () => {
    const f = [...sent].reverse().find((s) => s.frame.type === 'logs')!.frame;
    return f.type === 'logs' ? f.streamId : '';
  };
  const chunk = (streamId: string, data: string, stream: 'stdout' | 'stderr' = 'stdout'): LogChunk => ({ type: 'logChunk', streamId, stream, data });
  const end = (streamId: string, code: LogEnd['code'] = null, reason = 'done'): LogEnd => ({ type: 'logEnd', streamId, code, reason });
  /** Opens a stream and acknowledges it as the agent does. */
  const open = async (hostId = 'h1') => {
    const p = relay.open(hostId, req);
    await Promise.resolve();
    const id = lastOpen();
    relay.onFrame(hostId, chunk(id, ''));
    return { feed: await p, id };
  };
  return { sent, relay, lastOpen, chunk, end, open };
}

describe('log relay', () => {
  it('asks the agent with a window, relays its output in order, and ends', async () => {
    const t = setup();
    const { feed, id } = await t.open();
    expect(t.sent[0]).toMatchObject({ hostId: 'h1', frame: { type: 'logs', streamId: id, window: WINDOW, target: 'instance', id: 'i1', follow: true } });
    expect(id).toMatch(/^l[0-9a-f]{24}$/);
    t.relay.onFrame('h1', t.chunk(id, 'a\n'));
    t.relay.onFrame('h1', t.chunk(id, 'b\n', 'stderr'));
    t.relay.onFrame('h1', t.end(id, null, 'container stopped'));
    expect(await feed.next(10)).toEqual({ kind: 'data', stream: 'stdout', data: 'a\n' });
    expect(await feed.next(10)).toEqual({ kind: 'data', stream: 'stderr', data: 'b\n' });
    expect(await feed.next(10)).toEqual({ kind: 'end', reason: 'container stopped' });
    expect(await feed.next(10)).toBeNull();
    feed.close();
    expect(t.sent.filter((s) => s.frame.type === 'logsCancel')).toEqual([]); // ended by the agent: nothing to cancel
  });

  it('turns a refusal into the matching API error and a silent host into 503', async () => {
    const t = setup();
    const p = t.relay.open('h1', req);
    await Promise.resolve();
    t.relay.onFrame('h1', t.end(t.lastOpen(), 'not_found', 'no container for this instance on the host'));
    await expect(p).rejects.toMatchObject({ code: 'not_found', message: 'no container for this instance on the host' });
    const busy = t.relay.open('h1', req);
    await Promise.resolve();
    t.relay.onFrame('h1', t.end(t.lastOpen(), 'busy', 'too many'));
    await expect(busy).rejects.toMatchObject({ code: 'rate_limited' });
    await expect(setup(new Set()).relay.open('h1', req)).rejects.toMatchObject({ code: 'unavailable', message: 'the host is not connected to this control plane' });
  });

  it('ignores frames for streams not opened on the sending host', async () => {
    const t = setup();
    const { feed, id } = await t.open('h1');
    expect(t.relay.onFrame('h2', t.chunk(id, 'forged'))).toBe(false);
    expect(t.relay.onFrame('h1', t.chunk(`l${'0'.repeat(24)}`, 'unknown'))).toBe(false);
    expect(t.relay.onFrame('h2', t.end(id))).toBe(false);
    expect(t.relay.onFrame('h1', t.chunk(id, 'real'))).toBe(true);
    expect(await feed.next(10)).toEqual({ kind: 'data', stream: 'stdout', data: 'real' });
    expect(await feed.next(10)).toBe('idle');
  });

  it('grants credit a quarter window at a time as the client takes data', async () => {
    const t = setup();
    const { feed, id } = await t.open();
    const piece = 'x'.repeat(512);
    for (let i = 0; i < 4; i++) t.relay.onFrame('h1', t.chunk(id, piece));
    for (let i = 0; i < 4; i++) {
      const e = await feed.next(10);
      if (e && e !== 'idle') feed.consumed(e);
    }
    const credits = t.sent.filter((s) => s.frame.type === 'logCredit').map((s) => s.frame);
    expect(credits).toEqual([{ type: 'logCredit', streamId: id, bytes: 1024 }, { type: 'logCredit', streamId: id, bytes: 1024 }]);
  });

  it('an agent that overruns its window gets cancelled; the reader sees an error, not unbounded data', async () => {
    const t = setup();
    const { feed, id } = await t.open();
    const big = 'y'.repeat(16 * 1024);
    for (let i = 0; i < 10; i++) t.relay.onFrame('h1', t.chunk(id, big));
    expect(t.sent.filter((s) => s.frame.type === 'logsCancel')).toHaveLength(1);
    const seen = [];
    for (let e = await feed.next(10); e && e !== 'idle'; e = await feed.next(10)) seen.push(e);
    expect(seen.filter((e) => e.kind === 'data').length).toBeLessThanOrEqual(4);
    expect(seen.at(-1)).toMatchObject({ kind: 'error' });
  });

  it('a client that goes away cancels the stream on the agent; a host that goes away errors its streams', async () => {
    const t = setup();
    const a = await t.open('h1');
    const b = await t.open('h2');
    a.feed.close();
    expect(t.sent.at(-1)).toEqual({ hostId: 'h1', frame: { type: 'logsCancel', streamId: a.id } });
    expect(t.relay.onFrame('h1', t.chunk(a.id, 'late'))).toBe(false);
    t.relay.hostGone('h2');
    expect(await b.feed.next(10)).toEqual({ kind: 'error', code: 'unavailable', message: 'the host disconnected' });
    expect(t.relay.count('h2')).toBe(0);
  });

  it('caps streams per host', async () => {
    const t = setup();
    for (let i = 0; i < MAX_LOG_STREAMS_PER_HOST; i++) await t.open('h1');
    const over = await t.relay.open('h1', req).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(MacheteError);
    expect(over).toMatchObject({ code: 'rate_limited' });
    await t.open('h2');
  });
});

describe('feeds', () => {
  it('a waiting reader wakes on close with null', async () => {
    const f = new QueueFeed(100, { onConsumed() {}, onClose() {}, onOverflow() {} });
    const p = f.next(10_000);
    f.close();
    expect(await p).toBeNull();
  });
  it('a static feed replays its events once', async () => {
    const f = new StaticFeed([{ kind: 'end', reason: 'x' }]);
    expect(await f.next()).toEqual({ kind: 'end', reason: 'x' });
    expect(await f.next()).toBeNull();
  });
});
