import { describe, expect, it } from 'vitest';
import { LOG_CHUNK_BYTES, parseAgentFrame, parseServerFrame } from './index.ts';

const sid = `l${'ab'.repeat(12)}`;
const logs = { type: 'logs', streamId: sid, target: 'instance', id: 'i1', containerId: null, follow: true, tail: 10, since: null, window: 262_144 };

describe('log stream frames', () => {
  it('accepts the server side: logs, logCredit, logsCancel', () => {
    expect(parseServerFrame(JSON.stringify(logs))).toMatchObject({ ok: true });
    expect(parseServerFrame(JSON.stringify({ ...logs, target: 'invocation', tail: null, since: 1_700_000_000 }))).toMatchObject({ ok: true });
    expect(parseServerFrame(JSON.stringify({ type: 'logCredit', streamId: sid, bytes: 4096 }))).toMatchObject({ ok: true });
    expect(parseServerFrame(JSON.stringify({ type: 'logsCancel', streamId: sid }))).toMatchObject({ ok: true });
  });

  it('accepts the agent side: logChunk (with a drop count) and logEnd', () => {
    expect(parseAgentFrame(JSON.stringify({ type: 'logChunk', streamId: sid, stream: 'stderr', data: 'x'.repeat(LOG_CHUNK_BYTES) }))).toMatchObject({ ok: true });
    expect(parseAgentFrame(JSON.stringify({ type: 'logChunk', streamId: sid, stream: 'stdout', data: '', dropped: 5 }))).toMatchObject({ ok: true });
    expect(parseAgentFrame(JSON.stringify({ type: 'logEnd', streamId: sid, code: null, reason: 'container stopped' }))).toMatchObject({ ok: true });
    expect(parseAgentFrame(JSON.stringify({ type: 'logEnd', streamId: sid, code: 'busy', reason: 'too many' }))).toMatchObject({ ok: true });
  });

  it.each([
    ['a stream id not of the server form', { type: 'logChunk', streamId: 'l1', stream: 'stdout', data: '' }, 'streamId'],
    ['an unknown stream', { type: 'logChunk', streamId: sid, stream: 'stdin', data: '' }, 'stream'],
    ['an oversized chunk', { type: 'logChunk', streamId: sid, stream: 'stdout', data: 'x'.repeat(64 * 1024 + 1) }, 'data'],
    ['a negative drop count', { type: 'logChunk', streamId: sid, stream: 'stdout', data: '', dropped: -1 }, 'dropped'],
    ['an unknown end code', { type: 'logEnd', streamId: sid, code: 'teapot', reason: '' }, 'code'],
    ['an extra field', { type: 'logEnd', streamId: sid, code: null, reason: '', containerId: 'x' }, 'invalid frame'],
  ])('refuses from an agent %s', (_n, frame, msg) => {
    const r = parseAgentFrame(JSON.stringify(frame));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(msg);
  });

  it.each([
    ['a window below 1 KiB', { ...logs, window: 10 }, 'window'],
    ['a window above 16 MiB', { ...logs, window: 17 * 1024 * 1024 }, 'window'],
    ['an unknown target', { ...logs, target: 'host' }, 'target'],
    ['an id with a path in it', { ...logs, id: '../etc' }, 'id'],
    ['a zero credit', { type: 'logCredit', streamId: sid, bytes: 0 }, 'bytes'],
  ])('refuses from the server %s', (_n, frame, msg) => {
    const r = parseServerFrame(JSON.stringify(frame));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(msg);
  });
});
