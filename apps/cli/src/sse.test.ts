import { describe, expect, it } from 'vitest';
import { parseSse, type SseMessage } from './sse.ts';

async function parse(chunks: string[]): Promise<SseMessage[]> {
  const enc = new TextEncoder();
  const out: SseMessage[] = [];
  for await (const m of parseSse((async function* () {
    for (const c of chunks) yield enc.encode(c);
  })())) out.push(m);
  return out;
}

describe('parseSse', () => {
  it('yields one message per blank-line-terminated block with event, data and id', async () => {
    expect(await parse(['id: 1\nevent: audit\ndata: {"a":1}\n\n', 'event: ping\ndata: {}\n\n'])).toEqual([
      { id: '1', event: 'audit', data: '{"a":1}' },
      { id: '1', event: 'ping', data: '{}' },
    ]);
  });

  it('reassembles lines and multi-byte characters split across chunks, in LF, CRLF and CR', async () => {
    const text = 'event: a\r\ndata: h\u00e9llo\r\n\r\nevent: b\rdata: x\rdata: y\r\r';
    const bytes = new TextEncoder().encode(text);
    // one byte at a time: the parser, not the test, has to join lines and UTF-8 sequences
    const out: SseMessage[] = [];
    for await (const m of parseSse((async function* () {
      for (const b of bytes) yield new Uint8Array([b]);
    })())) out.push(m);
    expect(out).toEqual([
      { event: 'a', data: 'h\u00e9llo' },
      { event: 'b', data: 'x\ny' },
    ]);
  });

  it('ignores comments and unknown fields, defaults the event name, drops an unterminated last block', async () => {
    expect(await parse([': keep-alive\n', 'retry: 100\nfoo: bar\ndata: one\n\n', 'data: incomplete'])).toEqual([{ event: 'message', data: 'one' }]);
  });
});
