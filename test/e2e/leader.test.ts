import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, freshPostgresDatabase, waitFor } from '../helpers/cluster.ts';
import { FleetHost } from '../helpers/fleet.ts';

// Issue 5, more than one control plane: two API server processes on one PostgreSQL, a real agent
// (its own dockerd) connected to one of them. A change written through either reaches the agent
// (LISTEN/NOTIFY); exactly one holds the scheduler leader lock; kill -9 of the leader hands the
// lock to the survivor within 5 s, with no duplicate placement and no lost change.
const root = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-leader-'));
const keyFile = path.join(dir, 'secret.key');
const command = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
let dbUrl = '';
let dropDb: () => Promise<void>;
let sql: postgres.Sql;
let host: FleetHost | null = null;

/** `machete serve` as its own OS process, so the test can SIGKILL it. */
class ApiProcess {
  proc: ChildProcess | null = null;
  output = '';
  url = '';
  port = 0;
  constructor(readonly name: string) {}

  async start(): Promise<void> {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const p = spawn(process.execPath, [path.join(root, 'bin/machete.mjs'), 'serve'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        DATABASE_URL: dbUrl,
        SECRET_KEY_FILE: keyFile,
        MACHETE_PORT: String(this.port),
        MACHETE_BIND: '127.0.0.1',
        MACHETE_DATA_DIR: path.join(dir, this.name),
        MACHETE_LOCAL_AGENT: 'false',
        MACHETE_LOG_LEVEL: 'info',
        MACHETE_HEARTBEAT_MS: '500',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout!.on('data', (d) => (this.output += d));
    p.stderr!.on('data', (d) => (this.output += d));
    this.proc = p;
    await waitFor(async () => {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${this.name} exited:\n${this.output.slice(-2000)}`);
      return (await this.health()) !== null;
    }, `${this.name} listening`, 60_000, 200);
  }

  async health(): Promise<{ status: string; leader?: boolean; connectedAgents: number } | null> {
    return fetch(`${this.url}/api/health`).then((r) => (r.ok ? (r.json() as Promise<any>) : null), () => null);
  }

  adminToken(): string {
    return readFileSync(path.join(dir, this.name, 'admin.token'), 'utf8').trim();
  }

  async api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** SIGKILL: no close(), no unlock, no goodbye to PostgreSQL; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }
}

let admin = '';
const a = new ApiProcess('a');
const b = new ApiProcess('b');

beforeAll(async () => {
  const db = await freshPostgresDatabase(inject('pgUrl'));
  dbUrl = db.url;
  dropDb = db.drop;
  sql = postgres(dbUrl, { max: 2, onnotice: () => {} });
  writeFileSync(keyFile, 'k'.repeat(48), { mode: 0o600 });
  // A first, so it takes the lock; then B, which must not.
  await a.start();
  await waitFor(async () => (await a.health())?.leader === true, 'a leads', 10_000);
  expect(existsSync(path.join(dir, 'a', 'admin.token'))).toBe(true);
  admin = a.adminToken();
  await b.start();
  // The agent (its own dockerd) is connected to B, through a proxy to B's port.
  host = await FleetHost.start({ name: 'leader-h1', labels: { role: 'leader' }, capacity: { cpus: 8, memoryMb: 8192 } }, b.port);
  const join = await a.api('POST', '/api/v1/hosts/join-tokens', { ttlSeconds: 600 });
  expect(join.status).toBe(201);
  await host.startAgent(join.body.token);
  await waitFor(async () => (await a.api('GET', `/api/v1/hosts/${host!.hostId}`)).body?.status === 'ready', 'host ready');
}, 180_000);

afterAll(async () => {
  await a.kill9().catch(() => {});
  await b.kill9().catch(() => {});
  await host?.close().catch(() => {});
  await sql?.end({ timeout: 1 }).catch(() => {});
  await dropDb?.();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const liveInstances = async (tool: string) =>
  sql<{ id: string; host_id: string | null; state: string }[]>`select id, host_id, state from instances where tool = ${tool} and kind = 'replica' and desired <> 'removed'`;

describe('two control-plane processes on one PostgreSQL', () => {
  it('has exactly one leader, and a change written through A reaches the agent connected to B', async () => {
    expect((await a.health())?.leader).toBe(true);
    expect((await b.health())?.leader).toBe(false);
    expect((await b.health())?.connectedAgents).toBe(1);
    expect((await a.health())?.connectedAgents).toBe(0);
    // The leader lock is one session, on its own connection, held by A's backend. (Other test files'
    // control planes hold theirs in other databases of the same server: count this database's only.)
    const locks = await sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`;
    expect(locks[0]!.n).toBe(1);

    expect((await a.api('PUT', '/api/v1/tools/lead', { image: inject('testImage'), command, placement: { labels: { role: 'leader' } } })).status).toBe(201);
    expect((await a.api('PUT', '/api/v1/tools/lead/deployment', { replicas: 2 })).status).toBe(200);
    await waitFor(async () => (await host!.running('lead')).length === 2, 'two containers on the engine of the agent connected to B', 30_000, 200);
  }, 60_000);

  it('hands leadership to B within 5 s of kill -9 of A; a scale-up written right after is placed exactly once; no change is lost', async () => {
    // A change through A committed just before A dies: it must still reach the agent (on B).
    expect((await a.api('PUT', '/api/v1/tools/last/deployment', { replicas: 1 })).status).toBe(404);
    expect((await a.api('PUT', '/api/v1/tools/last', { image: inject('testImage'), command, placement: { labels: { role: 'leader' } } })).status).toBe(201);
    expect((await a.api('PUT', '/api/v1/tools/last/deployment', { replicas: 1 })).status).toBe(200);

    const t0 = Date.now();
    await a.kill9();
    // Right after the kill, before any takeover: scale up through the survivor.
    expect((await b.api('PUT', '/api/v1/tools/lead/deployment', { replicas: 4 })).status).toBe(200);
    await waitFor(async () => (await b.health())?.leader === true, 'b leads', 5_000, 50);
    const takeoverMs = Date.now() - t0;
    console.log(`leader failover after kill -9: ${takeoverMs} ms`);
    expect(takeoverMs).toBeLessThan(5_000);

    // Exactly 4 replicas: 4 instances, 4 distinct containers, and it stays that way.
    await waitFor(async () => (await host!.running('lead')).length === 4, 'four containers', 30_000, 200);
    await waitFor(async () => (await host!.running('last')).length === 1, 'the change written through A before its death', 30_000, 200);
    for (let i = 0; i < 10; i++) {
      const rows = await liveInstances('lead');
      expect(rows).toHaveLength(4);
      const running = await host!.running('lead');
      expect(running).toHaveLength(4);
      expect(new Set(running.map((c) => c.Labels['machete.instance'])).size).toBe(4);
      expect(new Set(running.map((c) => c.Labels['machete.instance']))).toEqual(new Set(rows.map((r) => r.id)));
      expect(await liveInstances('last')).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 300));
    }
    const d = await b.api('GET', '/api/v1/tools/lead/deployment');
    expect(d.body).toMatchObject({ replicas: 4, running: 4 });
    // B now runs housekeeping: a change through B still reaches its agent, and the lock is B's alone.
    expect((await b.api('PUT', '/api/v1/tools/lead/deployment', { replicas: 1 })).status).toBe(200);
    await waitFor(async () => (await host!.running('lead')).length === 1, 'scaled down to one', 30_000, 200);
    const locks = await sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`;
    expect(locks[0]!.n).toBe(1);
  }, 90_000);

  it('delivers a change whose NOTIFY never went out (its writer died between commit and notify)', async () => {
    await waitFor(async () => (await host!.running('lead')).length === 1, 'one lead replica', 30_000, 200);
    // Scale to zero as a control plane would, but committed straight to PostgreSQL with no NOTIFY.
    await sql.begin(async (tx) => {
      const [rev] = await tx`update state_revision set value = value + 1 where id = 1 returning value`;
      await tx`update deployments set replicas = 0 where tool = 'lead'`;
      await tx`update instances set desired = 'removed', revision = ${rev!.value}, updated_at = now() where tool = 'lead' and desired <> 'removed'`;
    });
    // The leader's sweep sees a host that has not acknowledged a change placed on it and pushes it again.
    await waitFor(async () => (await host!.running('lead')).length === 0, 'the unannounced change applied by the agent', 20_000, 200);
    expect(await host!.running('last')).toHaveLength(1);
  }, 60_000);
});
