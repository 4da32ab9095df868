import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { MIGRATIONS_DIR, rowsOf, type Db } from '../../../../db/src/index.ts';

export type Readiness = { ready: true } | { ready: false; reason: string };

/** A readiness probe must answer even when the database hangs. */
const CHECK_TIMEOUT_MS = 2000;

/** `when` of the newest committed migration; drizzle records it as `created_at` once applied. */
function newestMigration(dir: string): number {
  const journal = JSON.parse(readFileSync(path.join(dir, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number }[] };
  return Math.max(0, ...journal.entries.map((e) => e.when));
}

/**
 * Ready when the database answers and every committed migration is applied. Reasons are
 * fixed phrases: driver errors are not echoed (they may name hosts or users).
 */
export function createReadiness(db: Db, migrationsDir = MIGRATIONS_DIR): { check(): Promise<Readiness> } {
  let expected: number | null = null;
  const check = async (): Promise<Readiness> => {
    expected ??= newestMigration(migrationsDir);
    try {
      await db.execute(sql`select 1`);
    } catch {
      return { ready: false, reason: 'database not answering' };
    }
    let applied: number;
    try {
      const rows = rowsOf<{ applied: string }>(await db.execute(sql`select coalesce(max(created_at), 0)::text as applied from drizzle.__drizzle_migrations`));
      applied = Number(rows[0]?.applied ?? 0);
    } catch {
      return { ready: false, reason: 'database migrations not applied' };
    }
    if (applied < expected) return { ready: false, reason: 'database migrations not applied' };
    return { ready: true };
  };
  return {
    check: () =>
      Promise.race([
        check(),
        new Promise<Readiness>((r) => setTimeout(() => r({ ready: false, reason: 'database check timed out' }), CHECK_TIMEOUT_MS).unref()),
      ]),
  };
}

