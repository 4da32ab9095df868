import { describe, expect, it } from 'vitest';
import { ApiClient, resolve } from './client.ts';

// The CLI's route calls without a server: fetch is a stub, so these pin how a route of the
// contract becomes a request. The types are pinned by `tsc` (the @ts-expect-error lines below).
interface Sent {
  method: string;
  url: string;
  body: unknown;
}

function stubClient(answer: () => Response = () => Response.json({})) {
  const sent: Sent[] = [];
  const client = new ApiClient({
    server: 'http://127.0.0.1:9',
    token: 'tok',
    fetch: async (url, init = {}) => {
      sent.push({ method: init.method ?? 'GET', url: String(url), body: init.body === undefined ? undefined : JSON.parse(String(init.body)) });
      return answer();
    },
  });
  return { client, sent };
}

describe('route resolution', () => {
  it('fills path parameters encoded, under /api/v1', () => {
    expect(resolve('GET /tools/{name}/deployment', { params: { name: 'a b/c' } })).toEqual(['GET', '/api/v1/tools/a%20b%2Fc/deployment']);
    expect(resolve('GET /tools')).toEqual(['GET', '/api/v1/tools']);
  });

  it('adds the query keys that have a value, and only those', () => {
    expect(resolve('GET /instances', { query: { tool: 'hello', host: undefined } })).toEqual(['GET', '/api/v1/instances?tool=hello']);
    expect(resolve('GET /events', { query: { follow: 'true', after: 7, limit: 1000 } })).toEqual(['GET', '/api/v1/events?follow=true&after=7&limit=1000']);
    expect(resolve('GET /instances', { query: {} })).toEqual(['GET', '/api/v1/instances']);
  });

  it('refuses to send a route with a path parameter missing rather than a wrong path', () => {
    expect(() => resolve('GET /tools/{name}', {})).toThrow(/missing name/);
  });
});

describe('ApiClient.call', () => {
  it('sends the method, path and body of the route and answers the JSON', async () => {
    const { client, sent } = stubClient(() => Response.json({ tool: 'hello', replicas: 2, version: null, running: 0, instances: [] }));
    const d = await client.call('PUT /tools/{name}/deployment', { params: { name: 'hello' }, body: { replicas: 2 } });
    expect(d.replicas).toBe(2);
    expect(sent).toEqual([{ method: 'PUT', url: 'http://127.0.0.1:9/api/v1/tools/hello/deployment', body: { replicas: 2 } }]);
  });

  it('answers null from find on a 404 and throws other refusals as one line with status and code', async () => {
    const { client } = stubClient(() => Response.json({ error: { code: 'not_found', message: 'no tool named x' } }, { status: 404 }));
    expect(await client.find('GET /tools/{name}', { params: { name: 'x' } })).toBeNull();
    await expect(client.call('GET /tools/{name}', { params: { name: 'x' } })).rejects.toThrow('no tool named x (404 not_found)');
  });
});

/** Never run: `tsc` checks that the contract refuses what the server would not understand. */
export function typeChecks(c: ApiClient): void {
  // @ts-expect-error a route the server does not have
  void c.call('GET /tool');
  // @ts-expect-error the path parameter is required
  void c.call('GET /tools/{name}');
  // @ts-expect-error a field the deployment body does not have
  void c.call('PUT /tools/{name}/deployment', { params: { name: 'x' }, body: { replica: 1 } });
  // @ts-expect-error a query key the route does not read
  void c.call('GET /instances', { query: { state: 'running' } });
  // @ts-expect-error logs are a stream, not a JSON answer
  void c.call('GET /instances/{id}/logs', { params: { id: 'i' } });
  void c.call('GET /tools/{name}', { params: { name: 'x' } }).then((t) => {
    // @ts-expect-error the answer is typed from the server's schema: a Tool has no `replicas`
    void t.replicas;
  });
}
