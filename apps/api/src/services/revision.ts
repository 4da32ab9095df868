import { eq, sql } from 'drizzle-orm';
import { stateRevision, type Db, type Tx } from '../../../../db/src/index.ts';

/** Bumps the one desired-state revision inside the caller's transaction (the row lock serializes writers). */
export async function bumpRevision(tx: Tx): Promise<number> {
  const [row] = await tx
    .update(stateRevision)
    .set({ value: sql`${stateRevision.value} + 1` })
    .where(eq(stateRevision.id, 1))
    .returning({ value: stateRevision.value });
  if (!row) throw new Error('state_revision row missing: migrations not applied');
  return row.value;
}

export async function currentRevision(db: Db | Tx): Promise<number> {
  const [row] = await db.select({ value: stateRevision.value }).from(stateRevision).where(eq(stateRevision.id, 1));
  return row?.value ?? 0;
}
