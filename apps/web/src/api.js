// How the dashboard talks to the control plane: the same HTTP API as the CLI, with the
// user's token from sessionStorage (gone when the tab closes; never in a URL).
const KEY = 'machete.token';

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One JSON call under /api/v1; throws ApiError with the server's code and message. */
export async function api(method, path, body, token = session.token) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new ApiError(res.status, json?.error?.code ?? 'error', json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

/** Splits a text/event-stream into events; returns the unfinished rest. */
function parseSse(buffer, onMessage) {
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    const msg = { event: 'message', data: '', id: null };
    for (const line of block.split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i === 0) continue;
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') msg.event = value;
      else if (field === 'data') msg.data += (msg.data ? '\n' : '') + value;
      else if (field === 'id') msg.id = value;
    }
    onMessage(msg);
  }
  return rest;
}

/**
 * Follows GET /api/v1/events?follow=true. EventSource cannot send an Authorization header,
 * so this reads the stream with fetch; it reconnects after a drop, resuming after the last id.
 */
export function followEvents({ onEvent, onState, signal }) {
  let after = null;
  const once = async () => {
    const q = after === null ? 'follow=true&limit=50' : `follow=true&after=${after}`;
    const res = await fetch(`/api/v1/events?${q}`, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal });
    if (res.status === 401 || res.status === 403) return onState(res.status === 401 ? 'unauthorized' : 'forbidden');
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    onState('live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buf = parseSse(buf + value, (m) => {
        if (m.event === 'ping' || !m.data) return;
        const e = JSON.parse(m.data);
        after = e.id;
        onEvent(e);
      });
    }
  };
  (async () => {
    while (!signal.aborted) {
      try {
        const stop = await once();
        if (stop !== undefined || signal.aborted) return;
      } catch {
        if (signal.aborted) return;
        onState('reconnecting');
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
}
