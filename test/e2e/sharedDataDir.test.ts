import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDb } from '../../db/src/index.ts';
import { loadConfig } from '../../apps/api/src/config.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { startServer, type RunningServer } from '../../apps/api/src/server.ts';
import { freePort, freshPostgresDatabase } from '../helpers/cluster.ts';

// compose/docker-compose.yml starts API replicas together on one data volume: the first
// start writes admin.token once, every replica comes up, and no unseen admin token stays valid.
const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-shared-data-'));
let drop: () => Promise<void>;
let url: string;
const replicas: RunningServer[] = [];

beforeAll(async () => {
  const db = await freshPostgresDatabase(inject('pgUrl'));
  drop = db.drop;
  url = db.url;
  writeFileSync(path.join(dir, 'secret.key'), 'k'.repeat(48), { mode: 0o600 });
  // Migrated beforehand: this test is about the data directory, not about concurrent migrations.
  await (await createDb({ driver: 'postgres', url })).close();
});
afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => {});
  await drop?.();
  rmSync(dir, { recursive: true, force: true });
});

async function replica(): Promise<RunningServer> {
  const config = loadConfig({
    MACHETE_PORT: String(await freePort()),
    MACHETE_DATA_DIR: path.join(dir, 'data'),
    DATABASE_URL: url,
    SECRET_KEY_FILE: path.join(dir, 'secret.key'),
    MACHETE_LOCAL_AGENT: 'false',
    MACHETE_LOG_LEVEL: 'silent',
  });
  const s = await startServer(config, { log: createLogger('silent') });
  replicas.push(s);
  return s;
}

describe('replicas sharing one data directory', () => {
  it('all start, and exactly one admin token is valid: the one in admin.token', async () => {
    const started = await Promise.allSettled([replica(), replica(), replica()]);
    expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : s.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const token = readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim();
    for (const r of replicas) {
      const res = await fetch(`${r.url}/api/v1/tools`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    }
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`SELECT count(*)::int AS n FROM tokens WHERE name = 'admin' AND role = 'admin' AND revoked_at IS NULL`;
      expect(rows[0]!.n).toBe(1);
    } finally {
      await sql.end();
    }
  });
});
