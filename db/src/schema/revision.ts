import { bigint, integer, pgTable } from 'drizzle-orm/pg-core';

/** One row: the monotonic desired-state revision. Every desired-state change bumps it in its own transaction. */
export const stateRevision = pgTable('state_revision', {
  id: integer('id').primaryKey().default(1),
  value: bigint('value', { mode: 'number' }).notNull().default(0),
});
