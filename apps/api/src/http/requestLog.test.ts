import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Database } from '../../../../db/src/index.ts';
import { createLogger } from '../logger.ts';
import { wire } from '../wiring.ts';
import { createApp } from './app.ts';

// The access log as an operator reads it: one JSON line per request with an id the client also
// sees, the route pattern rather than the path, and never a token or a secret value.
let database: Database;
let app: ReturnType<typeof createApp>;
let admin = '';
const lines: Record<string, unknown>[] = [];
const raw: string[] = [];

beforeAll(async () => {
  database = await createDb({ driver: 'pglite' });
  const sink = new Writable({
    write(chunk, _enc, done) {
      raw.push(String(chunk));
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger('debug', 'machete', sink);
  const { deps } = wire({ db: database.db, key: new Uint8Array(randomBytes(32)), log, heartbeatMs: 1000 });
  app = createApp(deps);
  admin = (await deps.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 3600 })).token;
}, 60_000);
afterAll(() => database?.close());

const requestLines = () => lines.filter((l) => l.msg === 'request' || l.msg === 'request failed');

describe('the request log', () => {
  it('writes one line per request with its id, method, route pattern, status and duration, and answers the id', async () => {
    const res = await app.request('/api/v1/tools/logged-tool?x=1', { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(404);
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const line = requestLines().find((l) => l.reqId === id);
    expect(line).toMatchObject({ level: 30, method: 'GET', route: '/api/v1/tools/:name', status: 404 });
    expect(typeof line?.ms).toBe('number');
    expect(JSON.stringify(line)).not.toContain('logged-tool');
  });

  it("keeps a client's request id when it is a plain word, and replaces one that could forge log content", async () => {
    const kept = await app.request('/api/health', { headers: { 'x-request-id': 'trace-42_a' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-42_a');
    expect(requestLines().find((l) => l.reqId === 'trace-42_a')).toMatchObject({ route: '/api/health', level: 20 });
    const forged = await app.request('/api/health', { headers: { 'x-request-id': 'x", "msg": "forged' } });
    expect(forged.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines.some((l) => l.msg === 'forged')).toBe(false);
  });

  it('never logs a bearer token or a secret value, whatever the route answered', async () => {
    const auth = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    expect((await app.request('/api/v1/secrets/db-password', { method: 'PUT', headers: auth, body: JSON.stringify({ value: 'hunter2-very-secret' }) })).status).toBe(201);
    expect((await app.request('/api/v1/tools', { headers: { authorization: 'Bearer not.a.token-abcdef' } })).status).toBe(401);
    const all = raw.join('');
    expect(all).not.toContain(admin);
    expect(all).not.toContain(admin.split('.')[2]!);
    expect(all).not.toContain('hunter2-very-secret');
    expect(all).not.toContain('not.a.token-abcdef');
    expect(requestLines().filter((l) => l.route === '/api/v1/secrets/:name').map((l) => l.status)).toEqual([201]);
  });
});
