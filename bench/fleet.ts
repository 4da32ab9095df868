/**
 * bench/fleet: one control-plane process (npm start's `serve`, no local agent) on PostgreSQL,
 * and N simulated hosts in this process: real WebSocket clients speaking the real protocol
 * (enrolled with a join token), acknowledging every snapshot and delta with a status frame.
 *
 *   ulimit -n 65536; npx tsx bench/fleet.ts [N…]        (default: 1000 10000)
 *   PLACEMENT=0 skips the placement run (100,000 replicas over the first 1,000 hosts)
 *
 * Reports: time to enroll and to connect all agents, control-plane RSS per agent, and for a
 * change touching every host (a tool placed on all of them, replicas = hosts; then the tool
 * deleted) the time until each agent received it (p50/p99/max) and until PostgreSQL holds every
 * host's acknowledgement. Placement: 100,000 replicas over 1,000 hosts (10 tools of
 * 10,000, the cap per deployment), timed over the PUTs, which answer after the commit (placements/s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { enroll } from '../agent/src/credentials.ts';
import { startPostgres } from '../test/harness/postgres.ts';
import { TEST_IMAGE } from '../test/harness/image.ts';
import { freePort, freshPostgresDatabase } from '../test/helpers/cluster.ts';
import { SimAgent, type SimCredential } from './fleetSim.ts';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const Ns = sizes.length ? sizes : [1000, 10000];
const PLACEMENT = process.env.PLACEMENT !== '0';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface ControlPlane { url: string; admin: string; child: ChildProcess; dir: string }

async function startControlPlane(databaseUrl: string): Promise<ControlPlane> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-fleet-bench-'));
  const port = await freePort();
  // SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the control plane.
  const nodeArgs = (process.env.SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, 'bin/machete.mjs', 'serve'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      MACHETE_PORT: String(port),
      MACHETE_DATA_DIR: dir,
      MACHETE_LOCAL_AGENT: 'false',
      MACHETE_LOG_LEVEL: 'warn',
      MACHETE_RATE_LIMIT_PER_SECOND: '1000000',
      MACHETE_RATE_LIMIT_BURST: '1000000',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const tokenFile = path.join(dir, 'admin.token');
  for (let i = 0; i < 600 && !existsSync(tokenFile); i++) await sleep(100);
  const admin = readFileSync(tokenFile, 'utf8').trim();
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/api/v1/hosts`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(100);
  }
  return { url, admin, child, dir };
}

async function api(cp: ControlPlane, method: string, p: string, body?: unknown): Promise<any> {
  const res = await fetch(`${cp.url}${p}`, { method, headers: { authorization: `Bearer ${cp.admin}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  return res.json().catch(() => null);
}

/** Time from `change()` until every agent saw `key` (`tool@version` or `tool@removed`), and until PostgreSQL holds every host's acknowledgement of it. */
async function fanout(cp: ControlPlane, sql: postgres.Sql, agents: SimAgent[], tool: string, key: string, change: () => Promise<void>, acknowledged: () => Promise<boolean>) {
  const t0 = performance.now();
  await change();
  const putMs = performance.now() - t0;
  while (agents.some((a) => !a.firstSeen.has(key))) await sleep(10);
  const lat = agents.map((a) => a.firstSeen.get(key)! - t0);
  while (!(await acknowledged())) await sleep(20);
  const ackMs = performance.now() - t0;
  console.log(`  ${key}: API call ${fmt(putMs)}; received by all: p50 ${fmt(pct(lat, 50))}, p99 ${fmt(pct(lat, 99))}, max ${fmt(Math.max(...lat))}; all acknowledged in PostgreSQL ${fmt(ackMs)}`);
}

/** 100,000 replicas over the hosts: 10 tools of 10,000 (the API's cap per deployment), one after the other. */
async function placement(cp: ControlPlane, sql: postgres.Sql, hosts: number) {
  const tools = 10;
  const per = 10_000;
  for (let t = 0; t < tools; t++) await api(cp, 'PUT', `/api/v1/tools/bulk${t}`, { image: TEST_IMAGE, resources: { cpus: 0.01, memoryMb: 6 }, placement: { labels: { fleet: 'sim' } } });
  const t0 = performance.now();
  const puts: number[] = [];
  for (let t = 0; t < tools; t++) {
    const s = performance.now();
    await api(cp, 'PUT', `/api/v1/tools/bulk${t}/deployment`, { replicas: per });
    puts.push(performance.now() - s);
  }
  const [r] = await sql`select count(*)::int as n from instances where tool like 'bulk%' and desired <> 'removed' and host_id is not null`;
  const ms = performance.now() - t0;
  console.log(`  placement: ${r!.n} replicas over ${hosts} hosts committed in ${fmt(ms)} = ${Math.round(r!.n / (ms / 1000))} placements/s (per 10,000-replica PUT: p50 ${fmt(pct(puts, 50))}, max ${fmt(Math.max(...puts))}, response included)`);
}

async function run(pgUrl: string, n: number, withPlacement: boolean) {
  const db = await freshPostgresDatabase(pgUrl);
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const cp = await startControlPlane(db.url);
  const agents: SimAgent[] = [];
  try {
    await sleep(1000);
    const rss0 = rssMb(cp.child.pid!);
    const { token: join } = await api(cp, 'POST', '/api/v1/hosts/join-tokens', { ttlSeconds: 3600 });
    let t = performance.now();
    const creds: SimCredential[] = [];
    await pool(Array.from({ length: n }, (_, i) => i), 32, async (i) => {
      creds.push(await enroll(cp.url, join, `sim-${i}`, { fleet: 'sim' }));
    });
    const enrollMs = performance.now() - t;
    const wsUrl = `${cp.url.replace(/^http/, 'ws')}/api/v1/agent/connect`;
    t = performance.now();
    await pool(creds, 256, async (c) => {
      const a = new SimAgent(wsUrl, c);
      await a.connect();
      agents.push(a);
    });
    const connectMs = performance.now() - t;
    await sleep(2000);
    const rss1 = rssMb(cp.child.pid!);
    console.log(`N=${n}: enrolled in ${fmt(enrollMs)} (${Math.round(n / (enrollMs / 1000))}/s); connected all in ${fmt(connectMs)} (${Math.round(n / (connectMs / 1000))}/s)`);
    console.log(`  control-plane RSS ${rss0.toFixed(0)} MB idle → ${rss1.toFixed(0)} MB with ${n} agents = ${((rss1 - rss0) * 1024 / n).toFixed(1)} KB per agent`);
    // Two changes that touch every host: a tool placed once on each of them, then the tool deleted.
    // (A new version is not one: it rolls one replica at a time, by design.)
    await fanout(cp, sql, agents, 'fanout', 'fanout@1', async () => {
      await api(cp, 'PUT', '/api/v1/tools/fanout', { image: TEST_IMAGE, resources: { cpus: 0.01, memoryMb: 6 }, placement: { labels: { fleet: 'sim' } } });
      await api(cp, 'PUT', '/api/v1/tools/fanout/deployment', { replicas: n });
    }, async () => {
      const [r] = await sql`select count(*)::int as n from instances where tool = 'fanout' and state = 'running' and running_version = 1 and desired <> 'removed'`;
      return r!.n >= agents.length;
    });
    const [last] = await sql<{ rev: number }[]>`select coalesce(max(revision), 0)::int as rev from instances where tool = 'fanout'`;
    const rev = last!.rev;
    await fanout(cp, sql, agents, 'fanout', 'fanout@removed', async () => {
      await api(cp, 'DELETE', '/api/v1/tools/fanout');
    }, async () => {
      const [r] = await sql`select count(*)::int as n from hosts where applied_revision > ${rev}`;
      return r!.n >= agents.length;
    });
    console.log(`  control-plane RSS after the changes: ${rssMb(cp.child.pid!).toFixed(0)} MB`);
    if (withPlacement) await placement(cp, sql, n);
  } finally {
    agents.forEach((a) => a.close());
    cp.child.kill('SIGTERM');
    await new Promise((r) => cp.child.once('exit', r));
    rmSync(cp.dir, { recursive: true, force: true });
    await sql.end();
    await db.drop();
  }
}

async function main() {
  const pg = await startPostgres();
  try {
    for (const n of Ns) await run(pg.url, n, PLACEMENT && n === 1000);
  } finally {
    await pg.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
