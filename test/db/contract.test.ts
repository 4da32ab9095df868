import { readFileSync } from 'node:fs';
import path from 'node:path';
// The database contract: one suite, run against PGlite in memory and against a real PostgreSQL.
// Everything goes through the real services and scheduler, built the way the server builds them.
import { randomBytes } from 'node:crypto';
import { and, asc, eq, ne, sql, type SQL } from 'drizzle-orm';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDb, deployments, events, hosts, instances, MIGRATIONS_DIR, secrets, stateRevision, tokens, tools, toolVersions, type Database } from '../../db/src/index.ts';
import { deltaFor, snapshotFor } from '../../apps/api/src/hub/desired.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { scheduleTool } from '../../apps/api/src/scheduler/scheduler.ts';
import { currentRevision } from '../../apps/api/src/services/revision.ts';
import { wire } from '../../apps/api/src/wiring.ts';
import { PROTOCOL_VERSION, ToolSpecSchema, type ToolSpec, type ToolSpecInput } from '../../protocol/src/index.ts';

/** A zone with a non-whole-hour offset, so a timestamp read as local time or as UTC is visibly wrong. */
const ODD_TIME_ZONE = 'Pacific/Chatham';
/** Every committed migration, as drizzle-kit's journal lists them. */
const MIGRATION_COUNT = (JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: unknown[] }).entries.length;
const APP_TABLES = ['deployments', 'events', 'hosts', 'instances', 'invocations', 'secrets', 'state_revision', 'tokens', 'tool_versions', 'tools'];

interface Opened {
  database: Database;
  /** Tables in `public` before migrations ran; null where the database is empty by construction. */
  tablesBefore: number | null;
  reapplyMigrations(): Promise<void>;
  dispose(): Promise<void>;
}

async function openPglite(): Promise<Opened> {
  const database = await createDb({ driver: 'pglite' });
  await database.db.execute(sql.raw(`SET TIME ZONE '${ODD_TIME_ZONE}'`));
  return {
    database,
    tablesBefore: null,
    reapplyMigrations: () => migratePglite(database.db as never, { migrationsFolder: MIGRATIONS_DIR }),
    dispose: () => database.close(),
  };
}

/** A fresh database on the run's server, so parallel test files never share tables. */
async function openPostgres(): Promise<Opened> {
  const serverUrl = inject('pgUrl');
  const name = `machete_contract_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  // Every pooled connection of the driver starts in this zone.
  await admin.unsafe(`ALTER DATABASE ${name} SET timezone TO '${ODD_TIME_ZONE}'`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const probe = postgres(url.toString(), { max: 1, onnotice: () => {} });
  const [before] = await probe<{ n: number }[]>`select count(*)::int as n from information_schema.tables where table_schema = 'public'`;
  await probe.end();
  const database = await createDb({ driver: 'postgres', url: url.toString() });
  return {
    database,
    tablesBefore: before!.n,
    reapplyMigrations: async () => (await createDb({ driver: 'postgres', url: url.toString(), maxConnections: 1 })).close(),
    dispose: async () => {
      await database.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** `db.execute` returns an array (postgres.js) or `{ rows }` (PGlite). */
async function query<T>(database: Database, q: SQL): Promise<T[]> {
  const res = (await database.db.execute(q)) as unknown;
  return (Array.isArray(res) ? res : (res as { rows: T[] }).rows) as T[];
}

const drivers = [
  { name: 'PGlite in memory', open: openPglite },
  { name: 'PostgreSQL', open: openPostgres },
];

describe.each(drivers)('database contract on $name', ({ open }) => {
  let opened: Opened;
  let database: Database;
  let svc: ReturnType<typeof wire>['deps'];

  beforeAll(async () => {
    opened = await open();
    database = opened.database;
    svc = wire({ db: database.db, key: new Uint8Array(randomBytes(32)), log: createLogger('silent'), heartbeatMs: 1000 }).deps;
    // Open the whole pool now: concurrent tests must overlap, not queue behind connection set-up.
    await Promise.all(Array.from({ length: 10 }, () => database.db.execute(sql`select pg_sleep(0.05)`)));
  }, 120_000);
  afterAll(() => opened?.dispose(), 60_000);

  const revision = () => currentRevision(database.db);
  const spec = (suite: string, extra: Partial<ToolSpecInput> = {}): ToolSpec =>
    ToolSpecSchema.parse({ image: 'machete/busybox:test', command: ['sleep', '3600'], placement: { labels: { suite } }, ...extra });
  /** A ready host only tools placed with `suite` land on, so tests never see each other's instances. */
  const readyHost = async (suite: string): Promise<string> => {
    const id = `h-${suite}-${randomBytes(4).toString('hex')}`;
    await database.db.insert(hosts).values({ id, name: id, labels: { suite }, status: 'ready', capacity: { cpus: 8, memoryMb: 8192 } });
    return id;
  };
  const live = (tool: string) =>
    database.db.select().from(instances).where(and(eq(instances.tool, tool), ne(instances.desired, 'removed'))).orderBy(asc(instances.id));

  it('applies the migrations to an empty database, re-applying them is a no-op, and the revision starts at 0', async () => {
    expect(opened.tablesBefore ?? 0).toBe(0);
    const tables = async () =>
      (await query<{ table_name: string }>(database, sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`)).map((r) => r.table_name);
    const applied = async () => (await query<{ n: number }>(database, sql`select count(*)::int as n from drizzle.__drizzle_migrations`))[0]!.n;
    expect(await tables()).toEqual(APP_TABLES);
    expect(await applied()).toBe(MIGRATION_COUNT);
    expect(await database.db.select().from(stateRevision)).toEqual([{ id: 1, value: 0 }]);

    await opened.reapplyMigrations();
    expect(await tables()).toEqual(APP_TABLES);
    expect(await applied()).toBe(MIGRATION_COUNT);
    expect(await database.db.select().from(stateRevision)).toEqual([{ id: 1, value: 0 }]);
    expect(await revision()).toBe(0);
  });

  it('bumps the revision on a new tool spec, a deployment put and a tool delete, but not on an unchanged put', async () => {
    const hostId = await readyHost('bump');
    const r0 = await revision();
    const created = await svc.services.tools.put('bump', spec('bump'), 'test');
    expect(created.status).toBe('created');
    expect(await revision()).toBe(r0 + 1);

    const same = await svc.services.tools.put('bump', spec('bump'), 'test');
    expect(same.status).toBe('unchanged');
    expect(same.tool.version).toBe(1);
    expect(await svc.services.tools.versions('bump')).toHaveLength(1);
    expect(await revision()).toBe(r0 + 1);

    await svc.services.deployments.put('bump', { replicas: 2 }, 'test');
    const r2 = await revision();
    expect(r2).toBe(r0 + 2);
    expect((await live('bump')).map((i) => [i.hostId, i.revision])).toEqual([
      [hostId, r2],
      [hostId, r2],
    ]);

    const updated = await svc.services.tools.put('bump', spec('bump', { env: { MODE: 'two' } }), 'test');
    expect(updated).toMatchObject({ status: 'updated', tool: { version: 2 } });
    expect(await svc.services.tools.versions('bump')).toHaveLength(2);
    const r3 = await revision();
    expect(r3).toBeGreaterThan(r2);
    expect((await live('bump')).every((i) => i.version === 2 && i.revision === r3)).toBe(true);

    await svc.services.tools.remove('bump', 'test');
    expect(await revision()).toBe(r3 + 1);
    expect(await live('bump')).toEqual([]);
  });

  it('hands out 20 distinct consecutive revisions to 20 concurrent deployment updates', async () => {
    await readyHost('many');
    const names = Array.from({ length: 20 }, (_, i) => `many-${i}`);
    for (const n of names) await svc.services.tools.put(n, spec('many'), 'test');
    const r0 = await revision();

    const seen: number[] = [];
    let done = false;
    const watcher = (async () => {
      while (!done) seen.push(await revision());
    })();
    await Promise.all(names.map((n) => svc.services.deployments.put(n, { replicas: 1 }, 'test')));
    done = true;
    await watcher;

    expect(await revision()).toBe(r0 + 20);
    const revs = (await database.db.select({ r: instances.revision }).from(instances).where(sql`${instances.tool} like 'many-%'`)).map((x) => x.r);
    expect(revs.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => r0 + 1 + i));
    // A reader never sees the revision go backwards.
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });

  it('bumps the revision once per concurrent replica change of one tool', async () => {
    await readyHost('churn');
    await svc.services.tools.put('churn', spec('churn'), 'test');
    const r0 = await revision();
    // Every target differs from every other, so each update changes the instances.
    await Promise.all(Array.from({ length: 20 }, (_, i) => svc.services.deployments.put('churn', { replicas: i + 1 }, 'test')));
    expect(await revision()).toBe(r0 + 20);
    const { replicas } = await svc.services.deployments.get('churn');
    expect(await live('churn')).toHaveLength(replicas);
  });

  it('never creates more than the requested replicas under concurrent scale-ups of the same tool', async () => {
    const hostId = await readyHost('scale');
    await svc.services.tools.put('scale', spec('scale'), 'test');
    // A committed deployment nobody has scheduled yet: every pass below sees 5 missing replicas,
    // and only the row lock in scheduleTool stops them all from adding them.
    await database.db.insert(deployments).values({ tool: 'scale', replicas: 5 });
    const r0 = await revision();
    // Interleaved, so bare passes hold pool connections at the same time as the puts.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 ? svc.services.deployments.put('scale', { replicas: 5 }, 'test') : database.db.transaction((tx) => scheduleTool(tx, 'scale')),
      ),
    );
    // Counting tombstones too: an over-creation later trimmed back to 5 still fails here.
    expect(await database.db.select().from(instances).where(eq(instances.tool, 'scale'))).toHaveLength(5);
    const rows = await live('scale');
    expect(rows).toHaveLength(5);
    expect(rows.every((i) => i.hostId === hostId)).toBe(true);
    expect(await revision()).toBe(r0 + 1);
  });

  it('sends upserts after a revision, tombstones after scale-down and tool delete, and leaves removed instances out of snapshots', async () => {
    const hostId = await readyHost('delta');
    await svc.services.tools.put('delta', spec('delta'), 'test');
    const r0 = await revision();
    await svc.services.deployments.put('delta', { replicas: 3 }, 'test');

    const first = await deltaFor(database.db, hostId, r0);
    const all = (await live('delta')).map((i) => i.id);
    expect(first.upserts.map((u) => u.id).sort()).toEqual(all);
    expect(first.upserts.every((u) => u.revision > r0 && u.desired === 'running' && u.spec.image === 'machete/busybox:test')).toBe(true);
    expect(first.removes).toEqual([]);
    expect(first.revision).toBe(await revision());
    expect((await snapshotFor(database.db, hostId)).instances.map((i) => i.id).sort()).toEqual(all);
    expect(await deltaFor(database.db, hostId, first.revision)).toEqual({ revision: first.revision, upserts: [], removes: [] });

    await svc.services.deployments.put('delta', { replicas: 1 }, 'test');
    const down = await deltaFor(database.db, hostId, first.revision);
    const [kept] = (await live('delta')).map((i) => i.id);
    expect(down.upserts).toEqual([]);
    expect(down.removes.sort()).toEqual(all.filter((id) => id !== kept));
    const snap = await snapshotFor(database.db, hostId);
    expect(snap).toMatchObject({ revision: down.revision, instances: [{ id: kept, tool: 'delta' }] });

    await svc.services.tools.remove('delta', 'test');
    const gone = await deltaFor(database.db, hostId, down.revision);
    expect(gone).toEqual({ revision: await revision(), upserts: [], removes: [kept] });
    expect((await snapshotFor(database.db, hostId)).instances).toEqual([]);
    // An agent resuming from before the deployment learns of every tombstone.
    expect((await deltaFor(database.db, hostId, r0)).removes.sort()).toEqual(all);
  });

  it('places on a host that enrolled and said hello', async () => {
    const { hostId, token } = await svc.services.hosts.enroll('hello-host', { suite: 'hello' });
    await svc.services.tools.put('hello', spec('hello'), 'test');
    await svc.services.deployments.put('hello', { replicas: 2 }, 'test');
    expect((await live('hello')).map((i) => i.hostId)).toEqual([null, null]);

    await svc.services.hosts.connected(hostId, {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      agentVersion: 'test',
      hostName: 'hello-host',
      labels: { zone: 'a' },
      capacity: { cpus: 2, memoryMb: 2048 },
      lastRevision: 0,
    });
    expect(await svc.services.hosts.get(hostId)).toMatchObject({ status: 'ready', labels: { suite: 'hello', zone: 'a' }, capacity: { cpus: 2, memoryMb: 2048 } });
    expect((await live('hello')).map((i) => i.hostId)).toEqual([hostId, hostId]);
    expect((await svc.tokens.verify(token, 'agent')).hostId).toBe(hostId);
  });

  it('verifies an issued token until it is revoked, then refuses it', async () => {
    const issued = await svc.tokens.issue({ kind: 'user', role: 'operator', name: 'ci', ttlSeconds: 600 });
    expect(await svc.tokens.verify(issued.token, 'user')).toMatchObject({ kind: 'user', tokenId: issued.id, role: 'operator', name: 'ci' });
    await expect(svc.tokens.verify(issued.token, 'agent')).rejects.toMatchObject({ code: 'unauthenticated' });

    expect(await svc.tokens.revoke(issued.id)).toBe(true);
    await expect(svc.tokens.verify(issued.token, 'user')).rejects.toMatchObject({ code: 'unauthenticated' });
    const [row] = await database.db.select().from(tokens).where(eq(tokens.id, issued.id));
    expect(row!.revokedAt).toBeInstanceOf(Date);
    expect(await svc.tokens.revoke('no-such-token')).toBe(false);
  });

  it('persists events and lists them in the order they were recorded', async () => {
    const before = await svc.events.list({ limit: 1 });
    const afterId = before.at(-1)?.id ?? 0;
    const actions = ['contract.one', 'contract.two', 'contract.three'];
    for (const action of actions) await svc.events.record({ kind: 'audit', actor: 'test', action, outcome: 'ok', data: { action } });

    const after = await svc.events.list({ afterId, limit: 10 });
    expect(after.map((e) => e.action)).toEqual(actions);
    expect(after.map((e) => e.id)).toEqual([...after.map((e) => e.id)].sort((a, b) => a - b));
    expect(after[1]!.data).toEqual({ action: 'contract.two' });
    expect((await svc.events.list({ limit: 2 })).map((e) => e.action)).toEqual(actions.slice(1));
  });

  it('round-trips a tool spec with unicode and nested values through jsonb unchanged', async () => {
    const rich = spec('jsonb', {
      command: ['sh', '-c', 'echo "héllo — 世界 🚀" \\ \'quoted\''],
      env: { GREETING: 'Grüße, 你好, مرحبا, 👋🏽', EMPTY: '', JSON_LIKE: '{"a":[1,{"b":null}]}', NEWLINES: 'a\nb\tc' },
      secrets: ['db.password', 'api_key'],
      mounts: [{ source: '/srv/data/ünïcode', target: '/data', readOnly: false }],
      resources: { cpus: 0.25, memoryMb: 64, pids: 32 },
      placement: { labels: { suite: 'jsonb', 'zone.name': 'eu-west_1' } },
    });
    expect((await svc.services.tools.put('jsonb', rich, 'test')).status).toBe('created');
    expect((await svc.services.tools.get('jsonb')).spec).toEqual(rich);
    const [row] = await database.db.select().from(toolVersions).where(eq(toolVersions.tool, 'jsonb'));
    expect(row!.spec).toEqual(rich);
    // The stored spec hashes the same as the one sent, so a re-put is recognised as unchanged.
    expect((await svc.services.tools.put('jsonb', row!.spec, 'test')).status).toBe('unchanged');

    const data = { nested: { list: [1, 'two', { three: [true, null] }], 'ключ': 'значение' }, big: 2 ** 53 - 1, float: 0.1 };
    const ev = await svc.events.record({ kind: 'lifecycle', actor: 'test', action: 'contract.jsonb', outcome: 'ok', data });
    const [stored] = await database.db.select().from(events).where(eq(events.id, ev.id));
    expect(stored!.data).toEqual(data);
  });

  it('keeps secrets encrypted, versions them by value, rolls the instances naming them, and refuses deleting a named one', async () => {
    const hostId = await readyHost('secrets');
    const put = (name: string, value: string) => svc.services.secrets.put(name, value, 'test');
    expect((await put('sec.db-pw', 'pässwörd-1')).status).toBe('created');
    expect((await put('unused', 'u')).status).toBe('created');
    await svc.services.tools.put('sec-user', spec('secrets', { secrets: ['sec.db-pw'] }), 'test');
    await svc.services.tools.put('sec-other', spec('secrets'), 'test');
    await svc.services.deployments.put('sec-user', { replicas: 2 }, 'test');
    await svc.services.deployments.put('sec-other', { replicas: 1 }, 'test');
    const [row] = await database.db.select().from(secrets).where(eq(secrets.name, 'sec.db-pw'));
    expect(JSON.stringify(row)).not.toContain('pässwörd');
    expect(row).toMatchObject({ version: 1, sizeBytes: Buffer.byteLength('pässwörd-1') });

    const r0 = await revision();
    expect((await put('sec.db-pw', 'pässwörd-1')).status).toBe('unchanged');
    expect(await revision()).toBe(r0);
    const rotated = await put('sec.db-pw', 'pässwörd-2');
    expect(rotated).toMatchObject({ status: 'updated', secret: { version: 2 } });
    const r1 = await revision();
    expect(r1).toBe(r0 + 1);
    expect((await live('sec-user')).map((i) => i.revision)).toEqual([r1, r1]);
    expect((await live('sec-other')).every((i) => i.revision < r1)).toBe(true);
    // Rotating a secret no tool names moves nothing.
    await put('unused', 'u2');
    expect(await revision()).toBe(r1);

    const delta = await deltaFor(database.db, hostId, r0);
    expect(delta.upserts.map((u) => u.tool)).toEqual(['sec-user', 'sec-user']);
    expect(await svc.services.secrets.valuesFor(['sec.db-pw', 'missing'])).toEqual([{ name: 'sec.db-pw', value: 'pässwörd-2', version: 2 }]);
    expect((await svc.services.secrets.list()).map((s) => s.name)).toEqual(['sec.db-pw', 'unused']);
    await expect(svc.services.secrets.assertExist(['unused', 'missing'])).rejects.toMatchObject({ code: 'invalid_argument', details: { field: 'secrets.1' } });

    await expect(svc.services.secrets.remove('sec.db-pw', 'test')).rejects.toMatchObject({ code: 'conflict', details: { tools: ['sec-user'] } });
    await svc.services.tools.remove('sec-user', 'test');
    await svc.services.secrets.remove('sec.db-pw', 'test');
    await svc.services.secrets.remove('unused', 'test');
    expect(await svc.services.secrets.list()).toEqual([]);
    await expect(svc.services.secrets.remove('unused', 'test')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('returns timestamps as Dates for the same instant, whatever the session time zone', async () => {
    const start = Date.now();
    const issued = await svc.tokens.issue({ kind: 'user', role: 'viewer', ttlSeconds: 3600 });
    const [row] = await database.db.select().from(tokens).where(eq(tokens.id, issued.id));
    expect(row!.expiresAt).toBeInstanceOf(Date);
    expect(row!.expiresAt.getTime()).toBe(issued.expiresAt.getTime());
    // defaultNow() is the server's clock, read back as the same instant (loopback server: clocks agree).
    expect(row!.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(row!.createdAt.getTime() - start)).toBeLessThan(60_000);

    await svc.services.tools.put('clock', spec('clock'), 'test');
    const [t] = await database.db.select().from(tools).where(eq(tools.name, 'clock'));
    expect(t!.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(t!.createdAt.getTime() - start)).toBeLessThan(60_000);
    const [session] = await query<{ zone: string }>(database, sql`select current_setting('TimeZone') as zone`);
    expect(session?.zone).toBe(ODD_TIME_ZONE);
  });
});
