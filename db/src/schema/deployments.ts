import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { tools } from './tools.ts';

export const deployments = pgTable('deployments', {
  tool: text('tool').primaryKey().references(() => tools.name, { onDelete: 'cascade' }),
  replicas: integer('replicas').notNull(),
  /** Pinned version; null follows the tool's current version. */
  version: integer('version'),
  /** The last version every replica ran (ready) at once: where a failed rollout returns. */
  stableVersion: integer('stable_version'),
  /** The latest rollout: from → to, progressing | complete | rolled_back, and why when it failed. */
  rolloutFrom: integer('rollout_from'),
  rolloutTo: integer('rollout_to'),
  rolloutState: text('rollout_state'),
  rolloutReason: text('rollout_reason'),
  rolloutStartedAt: timestamp('rollout_started_at', { withTimezone: true }),
  rolloutUpdatedAt: timestamp('rollout_updated_at', { withTimezone: true }),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
