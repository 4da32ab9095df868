// @ts-check
// How the dashboard talks to the control plane: the same HTTP API as the CLI, with the
// user's token from sessionStorage (gone when the tab closes; never in a URL).
// This is the untyped transport; views call the typed routes of client.js instead.
const KEY = 'machete.token';

export const session = {
  /** @returns {string | null} */
  get token() {
    return sessionStorage.getItem(KEY);
  },
  /** @param {string} token */
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * One JSON call under /api/v1; throws ApiError with the server's code and message.
 * @param {'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {string | null} [token]
 * @returns {Promise<unknown>}
 */
export async function api(method, path, body, token = session.token) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  /** @type {{ error?: { code?: string, message?: string } } | null} */
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new ApiError(res.status, json?.error?.code ?? 'error', json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

/** @typedef {{ event: string, data: string, id: string | null }} SseMessage */

/**
 * Splits a text/event-stream into events; returns the unfinished rest.
 * @param {string} buffer
 * @param {(msg: SseMessage) => void} onMessage
 * @returns {string}
 */
export function parseSse(buffer, onMessage) {
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    /** @type {SseMessage} */
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

/** @typedef {'live' | 'reconnecting' | 'unauthorized' | 'forbidden'} StreamState */

/**
 * Follows a server-sent event stream under /api/v1. EventSource cannot send an Authorization
 * header, so this reads the stream with fetch; after a drop it waits and calls `pathFor`
 * again, which resumes where the last message left off.
 * @param {{ pathFor: () => string, onMessage: (msg: SseMessage) => void, onState: (state: StreamState) => void, signal: AbortSignal }} opts
 */
export function followStream({ pathFor, onMessage, onState, signal }) {
  const once = async () => {
    const res = await fetch(`/api/v1${pathFor()}`, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal });
    if (res.status === 401 || res.status === 403) return onState(res.status === 401 ? 'unauthorized' : 'forbidden');
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    onState('live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buf = parseSse(buf + value, onMessage);
    }
  };
  (async () => {
    while (!signal.aborted) {
      try {
        // `once` only returns (rather than throws) when the token was refused: stop then.
        await once();
        return;
      } catch {
        if (signal.aborted) return;
        onState('reconnecting');
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
}
