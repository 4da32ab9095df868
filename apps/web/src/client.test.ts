import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from './api.js';
import { call, followEvents, getDeployment, invoke, listHosts, listInstances, listTools, putDeployment, putTool, resolve } from './client.js';

// The dashboard's routes without a browser: fetch and sessionStorage are stubbed, so these
// pin the method, path, headers and body each function sends (the types pin the shapes).
interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}
let sent: Sent[] = [];
let answer: () => Response = () => Response.json([]);

beforeEach(() => {
  sent = [];
  answer = () => Response.json([]);
  const store = new Map<string, string>([['machete.token', 'tok']]);
  vi.stubGlobal('sessionStorage', { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v), removeItem: (k: string) => store.delete(k) });
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    sent.push({ method: init.method ?? 'GET', url, headers: init.headers as Record<string, string>, body: init.body === undefined ? undefined : JSON.parse(String(init.body)) });
    return answer();
  });
});
afterEach(() => vi.unstubAllGlobals());

describe('the dashboard client', () => {
  it('sends each route to its method and path under /api/v1 with the session token', async () => {
    answer = () => (sent.at(-1)?.url.endsWith('/invoke') ? Response.json({ id: 'v1', status: 'succeeded' }) : Response.json([]));
    await listTools();
    await putTool('a b', { image: 'busybox:latest' });
    await getDeployment('hello');
    await putDeployment('hello', { replicas: 2 });
    await listHosts();
    await listInstances();
    await listInstances({ tool: 'hello' });
    await invoke('hello', { args: ['x'], stdin: 'in' });
    expect(sent.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /api/v1/tools',
      'PUT /api/v1/tools/a%20b',
      'GET /api/v1/tools/hello/deployment',
      'PUT /api/v1/tools/hello/deployment',
      'GET /api/v1/hosts',
      'GET /api/v1/instances',
      'GET /api/v1/instances?tool=hello',
      'POST /api/v1/tools/hello/invoke',
    ]);
    expect(sent.every((s) => s.headers.authorization === 'Bearer tok')).toBe(true);
    expect(sent.map((s) => s.body)).toEqual([undefined, { image: 'busybox:latest' }, undefined, { replicas: 2 }, undefined, undefined, undefined, { args: ['x'], stdin: 'in', wait: true }]);
  });

  it('refuses an invoke answer that is not a finished invocation', async () => {
    answer = () => Response.json({ id: 'v1' }, { status: 202 });
    await expect(invoke('hello', {})).rejects.toThrow(/did not wait/);
  });

  it('resolves routes of the contract: parameters encoded, empty query keys left out, a missing parameter refused', () => {
    expect(resolve('GET /tools/{name}/deployment', { params: { name: 'a/b' } })).toEqual(['GET', '/tools/a%2Fb/deployment']);
    expect(resolve('GET /instances', { query: { tool: '', host: 'h1' } })).toEqual(['GET', '/instances?host=h1']);
    expect(() => resolve('DELETE /tools/{name}', {})).toThrow(/missing name/);
  });

  it('tries the token being signed in with rather than the session one', async () => {
    await listHosts('other');
    expect(sent[0]?.headers.authorization).toBe('Bearer other');
  });

  it('turns an error answer into an ApiError with the server code and message', async () => {
    answer = () => Response.json({ error: { code: 'not_found', message: 'no tool named hello' } }, { status: 404 });
    const err = await getDeployment('hello').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', message: 'no tool named hello' });
  });

  it('stops following events when the token may not read them, instead of asking again at once', async () => {
    answer = () => new Response(null, { status: 403 });
    const states: string[] = [];
    const ctl = new AbortController();
    // Returns nothing, as the shell's handler does.
    followEvents({ signal: ctl.signal, onEvent: () => {}, onState: (s) => void states.push(s) });
    await new Promise((r) => setTimeout(r, 100));
    ctl.abort();
    expect(states).toEqual(['forbidden']);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.url).toBe('/api/v1/events?follow=true&limit=50');
  });

  it('delivers streamed events and resumes after the last id once the stream drops', async () => {
    vi.useFakeTimers();
    try {
      const bodies = ['id: 7\ndata: {"id":7,"action":"tool.put"}\n\n: keep-alive\n\nevent: ping\ndata: x\n\n', ''];
      answer = () => new Response(bodies.shift() ?? '', { headers: { 'content-type': 'text/event-stream' } });
      const seen: number[] = [];
      const ctl = new AbortController();
      followEvents({ signal: ctl.signal, onEvent: (e) => seen.push(e.id), onState: () => {} });
      await vi.advanceTimersByTimeAsync(2500);
      ctl.abort();
      expect(seen).toEqual([7]);
      expect(sent.map((s) => s.url).slice(0, 2)).toEqual(['/api/v1/events?follow=true&limit=50', '/api/v1/events?follow=true&after=7']);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** Never run: `tsc` checks the dashboard's calls against the API's route contract. */
export function typeChecks(): void {
  // @ts-expect-error a route the server does not have
  void call('GET /tool', {});
  // @ts-expect-error a field the deployment body does not have
  void call('PUT /tools/{name}/deployment', { params: { name: 'x' }, body: { replica: 1 } });
  // @ts-expect-error the path parameter is required
  void call('GET /hosts/{id}', {});
  void call('GET /hosts', {}).then((hosts) => {
    // @ts-expect-error answers are typed from the server's schema: a Host has no `image`
    void hosts[0]?.image;
  });
}
