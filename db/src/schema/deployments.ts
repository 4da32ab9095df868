import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { tools } from './tools.ts';

export const deployments = pgTable('deployments', {
  tool: text('tool').primaryKey().references(() => tools.name, { onDelete: 'cascade' }),
  replicas: integer('replicas').notNull(),
  /** Pinned version; null follows the tool's current version. */
  version: integer('version'),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
