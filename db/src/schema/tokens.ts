import { index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Every issued token, by jti. A token whose row is missing or revoked is refused. */
export const tokens = pgTable(
  'tokens',
  {
    id: text('id').primaryKey(),
    /** user | agent | join */
    kind: text('kind').notNull(),
    /** admin | operator | viewer | invoker for user tokens; null otherwise */
    role: text('role'),
    name: text('name'),
    hostId: text('host_id'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('tokens_host_idx').on(t.hostId)],
);
