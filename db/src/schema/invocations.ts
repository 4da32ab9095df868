import { boolean, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** One run-once execution of a tool and, once finished, its result (kept for the retention period). */
export const invocations = pgTable(
  'invocations',
  {
    id: text('id').primaryKey(),
    tool: text('tool').notNull(),
    version: integer('version').notNull(),
    hostId: text('host_id'),
    /** running | succeeded | failed | timeout | cancelled */
    status: text('status').notNull(),
    /** Token id of the caller: an invoker may read only its own invocations. */
    actorTokenId: text('actor_token_id').notNull(),
    args: jsonb('args').$type<string[]>().notNull().default([]),
    timeoutSeconds: integer('timeout_seconds').notNull(),
    exitCode: integer('exit_code'),
    stdout: text('stdout'),
    stderr: text('stderr'),
    truncated: boolean('truncated').notNull().default(false),
    durationMs: integer('duration_ms'),
    reason: text('reason'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [index('invocations_status_idx').on(t.status, t.createdAt), index('invocations_host_idx').on(t.hostId, t.status)],
);
