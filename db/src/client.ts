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
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/** Opens the database the config names and applies the committed migrations. */
export async function createDb(config: DbConfig): Promise<Database> {
  if (config.driver === 'postgres') {
    const client = postgres(config.url, { max: config.maxConnections ?? 10, onnotice: () => {} });
    const db = drizzlePostgres({ client, schema, casing: 'snake_case' });
    await migratePostgres(db, { migrationsFolder: MIGRATIONS_DIR });
    return { db: db as unknown as Db, driver: 'postgres', close: () => client.end({ timeout: 5 }) };
  }
  if (config.dataDir) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const client = config.dataDir ? new PGlite(config.dataDir) : new PGlite();
  const db = drizzlePglite({ client, schema, casing: 'snake_case' });
  await migratePglite(db, { migrationsFolder: MIGRATIONS_DIR });
  return { db: db as unknown as Db, driver: 'pglite', close: () => client.close() };
}
