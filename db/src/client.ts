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
   * A session-level advisory lock on a dedicated connection: held until released or until
   * the process (and so the connection) dies. PGlite has one process, so it always holds it.
   */
  tryAdvisoryLock(key: number): Promise<boolean>;
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/** Opens the database the config names and applies the committed migrations. */
export async function createDb(config: DbConfig): Promise<Database> {
  if (config.driver === 'postgres') {
    const client = postgres(config.url, { max: config.maxConnections ?? 10, onnotice: () => {} });
    const db = drizzlePostgres({ client, schema, casing: 'snake_case' });
    await migratePostgres(db, { migrationsFolder: MIGRATIONS_DIR });
    let lockConn: Awaited<ReturnType<typeof client.reserve>> | null = null;
    let lockHeld = false;
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
      async tryAdvisoryLock(key) {
        try {
          if (lockHeld && lockConn) {
            // Held locks stack per call: once held, only prove the session is still alive.
            await lockConn`select 1`;
            return true;
          }
          lockConn ??= await client.reserve();
          const [row] = await lockConn<{ ok: boolean }[]>`select pg_try_advisory_lock(${key}) as ok`;
          lockHeld = !!row?.ok;
          return lockHeld;
        } catch {
          // A broken dedicated connection means the lock is gone with it: start over next time.
          lockConn?.release();
          lockConn = null;
          lockHeld = false;
          return false;
        }
      },
      async close() {
        lockConn?.release();
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
