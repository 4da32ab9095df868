import { bigint, boolean, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Desired columns (tool, version, hostId, desired) are written by the scheduler and bump `revision`;
 * observed columns (state, containerId, exitCode, restarts, reason, health, crash loop) come from agent status reports.
 * A removed instance stays as a tombstone (desired = 'removed') so agents resuming with a delta learn of it.
 */
export const instances = pgTable(
  'instances',
  {
    id: text('id').primaryKey(),
    tool: text('tool').notNull(),
    version: integer('version').notNull(),
    /** replica | invocation | warm */
    kind: text('kind').notNull().default('replica'),
    hostId: text('host_id'),
    /** running | stopped | removed */
    desired: text('desired').notNull().default('running'),
    revision: bigint('revision', { mode: 'number' }).notNull(),
    state: text('state').notNull().default('pending'),
    containerId: text('container_id'),
    runningVersion: integer('running_version'),
    exitCode: integer('exit_code'),
    restarts: integer('restarts').notNull().default(0),
    reason: text('reason'),
    /** none | starting | healthy | unhealthy; null until an agent reported it. */
    health: text('health'),
    crashLoop: boolean('crash_loop').notNull().default(false),
    backoffSeconds: integer('backoff_seconds'),
    lastExitCode: integer('last_exit_code'),
    /** Since when (database clock) the reported container has been running; null when it is not. */
    runningSince: timestamp('running_since', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('instances_host_revision_idx').on(t.hostId, t.revision),
    index('instances_tool_idx').on(t.tool),
  ],
);
