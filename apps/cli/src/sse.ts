/** One server-sent event (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/**
 * Parses an SSE byte stream into messages: `event:`, `data:` (joined by newlines), `id:`,
 * comments and `retry:` ignored, a blank line dispatches. LF, CRLF and CR all end lines.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  const line = function* (l: string): Generator<SseMessage> {
    if (l === '') {
      if (data.length) yield { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
      event = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) id = value;
  };
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let m: RegExpExecArray | null;
    // A lone CR at the very end may be the first half of CRLF: wait for the next chunk.
    while ((m = /\r\n|\n|\r(?!$)/.exec(buf))) {
      const l = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      yield* line(l);
    }
  }
  // A CR held back for a LF that never came still ends its line.
  if (buf.endsWith('\r')) yield* line(buf.slice(0, -1));
  // An event not ended by a blank line before the stream closed is incomplete: dropped, as the spec says.
}
