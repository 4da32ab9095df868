import { bigint, boolean, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const hosts = pgTable(
  'hosts',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
    /** ready | down | draining */
    status: text('status').notNull().default('down'),
    schedulable: boolean('schedulable').notNull().default(true),
    capacity: jsonb('capacity').$type<{ cpus: number; memoryMb: number }>().notNull().default({ cpus: 0, memoryMb: 0 }),
    /** Last desired-state revision the agent reported as applied. */
    appliedRevision: bigint('applied_revision', { mode: 'number' }).notNull().default(0),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('hosts_name_idx').on(t.name)],
);
