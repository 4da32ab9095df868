import type { ToolSpec } from '../../../protocol/src/index.ts';
import { integer, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

export const tools = pgTable('tools', {
  name: text('name').primaryKey(),
  currentVersion: integer('current_version').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Immutable: a changed spec is a new row, never an update. */
export const toolVersions = pgTable(
  'tool_versions',
  {
    tool: text('tool').notNull().references(() => tools.name, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    spec: jsonb('spec').$type<ToolSpec>().notNull(),
    specHash: text('spec_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tool, t.version] })],
);
