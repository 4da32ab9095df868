import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDb } from '../../db/src/index.ts';
import { loadConfig } from '../../apps/api/src/config.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { startServer, type RunningServer } from '../../apps/api/src/server.ts';
import { freePort, freshPostgresDatabase, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// Two control-plane replicas on one PostgreSQL: a change written through one reaches an agent
// connected to the other (LISTEN/NOTIFY), and housekeeping has exactly one leader.
const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-replicas-'));
let drop: () => Promise<void>;
let url: string;
const replicas: RunningServer[] = [];

async function replica(name: string): Promise<RunningServer> {
  const config = loadConfig({
    MACHETE_PORT: String(await freePort()),
    MACHETE_DATA_DIR: path.join(dir, name),
    DATABASE_URL: url,
    SECRET_KEY_FILE: path.join(dir, 'secret.key'),
    MACHETE_LOG_LEVEL: 'silent',
  });
  const s = await startServer(config, { log: createLogger('silent') });
  replicas.push(s);
  return s;
}
const call = async (s: RunningServer, token: string, method: string, p: string, body?: unknown) => {
  const res = await fetch(`${s.url}${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

beforeAll(async () => {
  const db = await freshPostgresDatabase(inject('pgUrl'));
  drop = db.drop;
  url = db.url;
  writeFileSync(path.join(dir, 'secret.key'), 'k'.repeat(48), { mode: 0o600 });
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => {});
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

describe('two control-plane replicas on one PostgreSQL', () => {
  it('delivers a change made through replica A to an agent connected to replica B', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const admin = (await a.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 600 })).token;
    // The agent enrolls and connects through B.
    const fakeCluster = { url: b.url, server: b } as never;
    const host = await enrollFake(fakeCluster, 'rep');
    const agent = await FakeAgent.connect(fakeCluster, host.token);
    agent.hello();
    await agent.next('snapshot');
    await waitFor(async () => (await call(a, admin, 'GET', `/api/v1/hosts/${host.hostId}`)).body?.status === 'ready', 'host ready');
    // The change goes through A.
    expect((await call(a, admin, 'PUT', '/api/v1/tools/rep', { image: 'machete/busybox:test', placement: { labels: { role: 'rep' } } })).status).toBe(201);
    expect((await call(a, admin, 'PUT', '/api/v1/tools/rep/deployment', { replicas: 2 })).status).toBe(200);
    const delta = await agent.next('delta');
    expect(delta.upserts).toHaveLength(2);
    // A token revoked through B is refused by A on the next request.
    const viewer = await call(b, admin, 'POST', '/api/v1/tokens', { role: 'viewer' });
    expect((await call(a, viewer.body.token, 'GET', '/api/v1/tools')).status).toBe(200);
    expect((await call(b, admin, 'DELETE', `/api/v1/tokens/${viewer.body.id}`)).status).toBe(204);
    expect((await call(a, viewer.body.token, 'GET', '/api/v1/tools')).status).toBe(401);
    agent.ws.close();
  });

  it('grants the housekeeping lock to one replica at a time and hands it over when the holder goes', async () => {
    const one = await createDb({ driver: 'postgres', url });
    const two = await createDb({ driver: 'postgres', url });
    const key = 4242;
    expect(await one.tryAdvisoryLock(key)).toBe(true);
    expect(await one.tryAdvisoryLock(key)).toBe(true); // still the holder
    expect(await two.tryAdvisoryLock(key)).toBe(false);
    await one.close(); // the holder dies: its session, and so the lock, is gone
    expect(await waitFor(async () => two.tryAdvisoryLock(key), 'lock handed over', 5000)).toBe(true);
    await two.close();
  });
});
