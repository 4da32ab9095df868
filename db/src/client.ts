import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema/index.ts';

export type Schema = typeof schema;
/** The one database type services see, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export type DbConfig =
  | { driver: 'postgres'; url: string; maxConnections?: number }
  /** dataDir undefined keeps PGlite in memory (tests). */
  | { driver: 'pglite'; dataDir?: string };

export interface Database {
  db: Db;
  driver: DbConfig['driver'];
  /** LISTEN on a channel; resolves once listening, with the function that stops it. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  /**
   * A session-level advisory lock on a dedicated connection: held until the process (and so the
   * connection) dies, or until the holder stays silent for 3 s (LOCK_SESSION). A holder calls it
   * every second: true means it still holds the lock. PGlite has one process: always true.
   */
  tryAdvisoryLock(key: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The lock connection's session settings. PostgreSQL releases a session's advisory locks when
 * the session ends; these make it end soon after its holder stops talking, whatever the network
 * does: idle_session_timeout ends a session that sent nothing for 3 s (a holder proves itself
 * every second), and server-side keepalives notice a peer that vanished mid-query. Without them
 * a half-open TCP connection (the holder's machine gone, no FIN) would keep the lock for hours.
 */
export const LOCK_SESSION = { idle_session_timeout: 3000, tcp_keepalives_idle: 1, tcp_keepalives_interval: 1, tcp_keepalives_count: 3, application_name: 'machete-leader-lock' };
const LOCK_QUERY_TIMEOUT_MS = 2_000;

/**
 * A session-level advisory lock on its own one-connection client (never a pooled connection).
 * postgres.js reconnects silently, so "held" is tied to the backend pid that took the lock:
 * a new session, however healthy, does not hold it.
 */
function advisoryLock(url: string) {
  let sql: postgres.Sql | null = null;
  let heldBy: number | null = null;
  const timeout = <T>(p: Promise<T>) =>
    Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('lock query timed out')), LOCK_QUERY_TIMEOUT_MS).unref())]);
  const reset = () => {
    const old = sql;
    sql = null;
    heldBy = null;
    void old?.end({ timeout: 0 }).catch(() => {});
  };
  return {
    async tryLock(key: number): Promise<boolean> {
      try {
        sql ??= postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {}, connection: LOCK_SESSION });
        if (heldBy !== null) {
          const [row] = await timeout(sql<{ pid: number }[]>`select pg_backend_pid() as pid`);
          if (row?.pid === heldBy) return true;
          // The session that held the lock is gone (and the lock with it): start over.
          reset();
          return false;
        }
        const [row] = await timeout(sql<{ ok: boolean; pid: number }[]>`select pg_try_advisory_lock(${key}) as ok, pg_backend_pid() as pid`);
        heldBy = row?.ok ? row.pid : null;
        return heldBy !== null;
      } catch {
        // A broken or stuck connection means the lock is gone with it (or soon will be).
        reset();
        return false;
      }
    },
    async close(): Promise<void> {
      const old = sql;
      sql = null;
      heldBy = null;
      await old?.end({ timeout: 1 }).catch(() => {});
    },
  };
}

/** The rows of `db.execute(sql…)`: postgres.js answers an array, PGlite `{ rows }`. */
export function rowsOf<T>(res: unknown): T[] {
  return Array.isArray(res) ? (res as T[]) : ((res as { rows?: T[] }).rows ?? []);
}

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/** Opens the database the config names and applies the committed migrations. */
export async function createDb(config: DbConfig): Promise<Database> {
  if (config.driver === 'postgres') {
    const client = postgres(config.url, { max: config.maxConnections ?? 10, onnotice: () => {} });
    const db = drizzlePostgres({ client, schema, casing: 'snake_case' });
    await migratePostgres(db, { migrationsFolder: MIGRATIONS_DIR });
    const lock = advisoryLock(config.url);
    return {
      db: db as unknown as Db,
      driver: 'postgres',
      async listen(channel, onPayload) {
        const l = await client.listen(channel, onPayload);
        return () => l.unlisten();
      },
      async notify(channel, payload) {
        await client.notify(channel, payload);
      },
      tryAdvisoryLock: (key) => lock.tryLock(key),
      async close() {
        await lock.close();
        await client.end({ timeout: 5 });
      },
    };
  }
  if (config.dataDir) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const client = config.dataDir ? new PGlite(config.dataDir) : new PGlite();
  const db = drizzlePglite({ client, schema, casing: 'snake_case' });
  await migratePglite(db, { migrationsFolder: MIGRATIONS_DIR });
  return {
    db: db as unknown as Db,
    driver: 'pglite',
    listen: (channel, onPayload) => client.listen(channel, onPayload),
    async notify(channel, payload) {
      await client.query('select pg_notify($1, $2)', [channel, payload]);
    },
    tryAdvisoryLock: async () => true,
    close: () => client.close(),
  };
}
