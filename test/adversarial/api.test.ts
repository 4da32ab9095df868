import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../../protocol/src/index.ts';
import { makeApi } from '../helpers/api.ts';
import { eventMark, eventsSince, refusalsSince, withStatus } from './helpers.ts';

// Cases 25–28 of SECURITY-CASES.md, the per-token rate limit and the flood bound of the
// audit trail, against the whole API in process (app.request). Case 24 is in http.test.ts.
type Api = Awaited<ReturnType<typeof makeApi>>;
let api: Api;
beforeAll(async () => {
  api = await makeApi();
}, 60_000);
afterAll(() => api?.close());

const spec = { image: 'machete/busybox:test', command: ['sleep', '3600'] };
const PUT_TOOL = 'PUT /api/v1/tools/:name';
const nested = (open: string, close: string, inner: string, n: number) => open.repeat(n) + inner + close.repeat(n);

/** Sends every body as PUT /tools/<name>; each must be refused with `status`, nothing stored, each audited. */
async function expectRejected(name: string, bodies: Array<string | object>, status = 400): Promise<Array<{ status: number; body: any }>> {
  const mark = await eventMark(api.deps.events);
  const answers = [];
  for (const body of bodies) {
    const r = await api.call('PUT', `/api/v1/tools/${name}`, body);
    expect(r.status, JSON.stringify(r.body).slice(0, 200)).toBe(status);
    answers.push(r);
  }
  expect((await api.call('GET', `/api/v1/tools/${name}`)).status).toBe(404);
  expect(await refusalsSince(api.deps.events, mark, withStatus(status, PUT_TOOL))).toBe(bodies.length);
  return answers;
}

describe('HTTP input', () => {
  it('refuses JSON nested 10,000 deep with 400 before validation and keeps serving (case 25)', async () => {
    const deep = [
      nested('[', ']', '', 10_000),
      `{"image":"machete/busybox:test","env":${nested('{"a":', '}', '1', 10_000)}}`,
      `{"image":"machete/busybox:test","command":${nested('[', ']', '"x"', 10_000)}}`,
      nested('{"x":', '}', 'null', 65), // one level past the limit
    ];
    const answers = await expectRejected('deep', deep);
    for (const r of answers) {
      expect(r.body.error.code).toBe('invalid_argument');
      expect(r.body.error.message).toContain('nested deeper than 64');
    }
    // Brackets inside strings are text, not nesting: a spec with "[[[[" in a value is fine.
    const fine = await api.call('PUT', '/api/v1/tools/brackets', { ...spec, command: ['echo', '['.repeat(10_000)] });
    expect(fine.status).toBe(201);
    expect((await api.call('GET', '/api/health', undefined, null)).status).toBe(200);
  });

  it('keeps __proto__ and constructor env keys as plain data and leaves Object.prototype alone (case 26)', async () => {
    const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const raw = '{"image":"machete/busybox:test","env":{"__proto__":"p","constructor":"c","toString":"t","A":"1"}}';
    const put = await api.call('PUT', '/api/v1/tools/proto', raw);
    expect(put.status).toBe(201);
    const got = await api.call('GET', '/api/v1/tools/proto');
    const env = got.body.spec.env as Record<string, unknown>;
    expect(Object.keys(env).sort()).toEqual(['A', '__proto__', 'constructor', 'toString']);
    expect(Object.hasOwn(env, '__proto__') && env['__proto__']).toBe('p');
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
    // The same spec, sent again, is the same version: nothing was lost on the way in.
    expect((await api.call('PUT', '/api/v1/tools/proto', raw)).body.version).toBe(1);
    // Through the agent-side parser too (frames are parsed with the same schema).
    expect(Object.hasOwn(ToolSpecSchema.parse(JSON.parse(raw)).env, '__proto__')).toBe(true);
    // Objects where strings belong, and __proto__ at the top level, are refused outright.
    await expectRejected('proto2', [
      '{"image":"machete/busybox:test","env":{"__proto__":{"polluted":"yes"}}}',
      '{"image":"machete/busybox:test","__proto__":{"polluted":"yes"}}',
      '{"image":"machete/busybox:test","resources":{"__proto__":{"polluted":1}}}',
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });

  it('refuses numbers that are strings, huge, fractional or negative, naming the field (case 27)', async () => {
    const bad: Array<[object, string]> = [
      [{ resources: { memoryMb: '1e99' } }, 'resources.memoryMb'],
      [{ resources: { memoryMb: 1e99 } }, 'resources.memoryMb'],
      [{ resources: { memoryMb: 256.5 } }, 'resources.memoryMb'],
      [{ resources: { memoryMb: -256 } }, 'resources.memoryMb'],
      [{ resources: { pids: 1.5 } }, 'resources.pids'],
      [{ resources: { pids: -1 } }, 'resources.pids'],
      [{ resources: { cpus: 1000 } }, 'resources.cpus'],
      [{ resources: { cpus: '1' } }, 'resources.cpus'],
      [{ timeoutSeconds: 0.5 }, 'timeoutSeconds'],
      [{ warm: -1 }, 'warm'],
    ];
    const answers = await expectRejected('numbers', bad.map(([extra]) => ({ ...spec, ...extra })));
    answers.forEach((r, i) => expect(r.body.error.details.field).toBe(bad[i]![1]));
  });

  it('refuses hostile tool names with 400 and leaves the tools table intact (case 28)', async () => {
    const names = ["x'); DROP TABLE tools;--", 'a'.repeat(100 * 1024), 'a/b', '../etc', 'UPPER', '-x'];
    const mark = await eventMark(api.deps.events);
    for (const n of names) {
      const r = await api.call('PUT', `/api/v1/tools/${encodeURIComponent(n)}`, spec);
      expect(r.status).toBe(400);
      expect(r.body.error.details.field).toBe('name');
      expect(JSON.stringify(r.body)).not.toContain('DROP TABLE');
    }
    expect(await refusalsSince(api.deps.events, mark, withStatus(400, PUT_TOOL))).toBe(names.length);
    const list = await api.call('GET', '/api/v1/tools');
    expect(list.status).toBe(200);
    expect(list.body.every((t: { name: string }) => /^[a-z0-9-]+$/.test(t.name))).toBe(true);
  });
});

describe('rate limit', () => {
  let tight: Api;
  beforeAll(async () => {
    tight = await makeApi({ limits: { ratePerSecond: 1, rateBurst: 5 } });
  }, 60_000);
  afterAll(() => tight?.close());

  it('answers 429 with Retry-After past a token’s burst, per token, and stores nothing', async () => {
    const mark = await eventMark(tight.deps.events);
    const other = await tight.token('operator');
    // Sent at once, so the bucket cannot refill in between: exactly the burst gets through.
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => tight.call('PUT', `/api/v1/tools/rl-${i}`, spec)));
    const limited = answers.filter((r) => r.status === 429);
    expect(answers.filter((r) => r.status === 201)).toHaveLength(5);
    expect(limited).toHaveLength(3);
    for (const r of limited) {
      expect(r.body.error.code).toBe('rate_limited');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    const stored = (await tight.call('GET', '/api/v1/tools', undefined, other)).body as unknown[];
    expect(stored).toHaveLength(5);
    expect(await refusalsSince(tight.deps.events, mark, withStatus(429, PUT_TOOL))).toBe(3);
    // The bucket refills at the configured rate.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await tight.call('PUT', '/api/v1/tools/rl-5', spec)).status).toBe(201);
  });

  it('limits requests without a token per source address', async () => {
    const statuses = (await Promise.all(Array.from({ length: 7 }, () => tight.call('GET', '/api/v1/tools', undefined, null)))).map((r) => r.status);
    expect(statuses.sort()).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });
});

describe('audit of refusals', () => {
  it('accounts for every one of 500 unauthenticated requests in a bounded number of events', async () => {
    const mark = await eventMark(api.deps.events);
    const garbage = ['', 'abc.def.ghi', 'Basic Zm9vOmJhcg=='];
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => api.app.request('/api/v1/tools', { headers: garbage[i % 3] ? { authorization: garbage[i % 3]! } : {} })),
    );
    // Past the burst the rate limit answers 429; either way each request is a refusal.
    const rows = await eventsSince(api.deps.events, mark);
    expect(rows.length).toBeLessThanOrEqual(10);
    expect(rows.every((e) => e.actor === 'ip:unknown' && e.action === 'GET /api/v1/tools' && e.reason && e.outcome === 'refused')).toBe(true);
    expect(await refusalsSince(api.deps.events, mark, withStatus(401))).toBeGreaterThan(0);
    expect(await refusalsSince(api.deps.events, mark)).toBe(500);
  });

  it('records every mutating call, even one a service does not audit itself', async () => {
    await api.call('PUT', '/api/v1/tools/audited', spec);
    const mark = await eventMark(api.deps.events);
    expect((await api.call('PUT', '/api/v1/tools/audited', spec)).status).toBe(200); // unchanged: no tool.put event
    expect((await api.call('DELETE', '/api/v1/tools/never-was')).status).toBe(404);
    const rows = await eventsSince(api.deps.events, mark);
    expect(rows.map((e) => [e.action, e.outcome])).toEqual([
      [PUT_TOOL, 'ok'],
      ['DELETE /api/v1/tools/:name', 'error'],
    ]);
    expect(rows.every((e) => e.actor.startsWith('token:'))).toBe(true);
  });
});
