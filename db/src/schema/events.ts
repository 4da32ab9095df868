import { bigserial, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Audit and lifecycle events, append-only. */
export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** audit | lifecycle */
    kind: text('kind').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    target: text('target'),
    /** ok | refused | error */
    outcome: text('outcome').notNull(),
    reason: text('reason'),
    data: jsonb('data').$type<Record<string, unknown>>(),
  },
  (t) => [index('events_at_idx').on(t.at)],
);
