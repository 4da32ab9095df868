import { z } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi } from '../../../../test/helpers/api.ts';
import { AGENT_ONLY_ROUTES, routes, type RouteContract } from './contract.ts';

// The clients' route table (contract.ts) against what the app registers: the same routes both
// ways, the same query keys, and the very schemas the routes validate and answer with. Together
// with the clients typing every call from that table, a route or field renamed on the server
// fails here or in `tsc`, not in a user's terminal or browser.

interface Registered {
  method: string;
  path: string;
  request?: { query?: z.ZodObject; body?: { content?: Record<string, { schema: z.ZodType }> } };
  responses: Record<string, { content?: Record<string, { schema: z.ZodType }> }>;
}

let api: Awaited<ReturnType<typeof makeApi>>;
let registered: Map<string, Registered>;
beforeAll(async () => {
  api = await makeApi();
  const defs = (api.app.openAPIRegistry.definitions as { type: string; route?: Registered }[]).filter((d) => d.type === 'route' && d.route!.path.startsWith('/api/v1/'));
  registered = new Map(defs.map(({ route }) => [`${route!.method.toUpperCase()} ${route!.path.slice('/api/v1'.length)}`, route!]));
}, 60_000);
afterAll(() => api?.close());

const table = routes as Record<string, RouteContract>;
const jsonSchemaOf = (s: z.ZodType) => JSON.stringify(z.toJSONSchema(s, { unrepresentable: 'any' }));
/** The same object, an array of the same element, or (inline schemas) the same JSON Schema. */
function sameSchema(a: z.ZodType | null | undefined, b: z.ZodType | null | undefined): boolean {
  if (!a || !b) return a === b;
  if (a === b) return true;
  if (a instanceof z.ZodArray && b instanceof z.ZodArray) return sameSchema(a.element as z.ZodType, b.element as z.ZodType);
  return jsonSchemaOf(a) === jsonSchemaOf(b);
}

describe('the client route table', () => {
  it('names every /api/v1 route the app registers, and no other', () => {
    const clientRoutes = [...registered.keys()].filter((k) => !(AGENT_ONLY_ROUTES as readonly string[]).includes(k)).sort();
    expect(Object.keys(table).sort()).toEqual(clientRoutes);
    for (const k of AGENT_ONLY_ROUTES) expect(registered.has(k), k).toBe(true);
  });

  it.each(Object.keys(routes))('%s: same query keys, body and answers as the registered route', (key) => {
    const route = registered.get(key)!;
    const c = table[key]!;
    expect(Object.keys(route.request?.query?.shape ?? {}).sort(), 'query keys').toEqual([...(c.query ?? [])].sort());
    expect(sameSchema(route.request?.body?.content?.['application/json']?.schema, c.body), 'body schema').toBe(true);
    const ok = Object.entries(route.responses).filter(([s]) => s.startsWith('2'));
    const streams = ok.some(([, r]) => r.content?.['text/event-stream']);
    expect(streams, 'text/event-stream').toBe(!!c.stream);
    const jsonAnswers = ok.filter(([, r]) => !r.content || r.content['application/json']);
    expect(jsonAnswers.map(([s]) => s).sort(), 'JSON success statuses').toEqual(Object.keys(c.responses ?? {}).sort());
    for (const [status, r] of jsonAnswers) {
      expect(sameSchema(r.content?.['application/json']?.schema ?? null, c.responses?.[Number(status)]), `answer ${status}`).toBe(true);
    }
  });

  it('would notice a drift: a different schema is not the same', () => {
    const route = registered.get('GET /tools/{name}')!;
    expect(sameSchema(route.responses['200']!.content!['application/json']!.schema, routes['GET /hosts/{id}'].responses[200])).toBe(false);
    expect(sameSchema(z.object({ id: z.string() }), z.object({ id: z.number() }))).toBe(false);
  });
});
