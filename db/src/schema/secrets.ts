import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Named secrets, encrypted at rest with AES-256-GCM by the control plane (apps/api/src/secrets/).
 * The database never sees a value: only the nonce and the ciphertext with its tag, both base64.
 * The name is bound to the ciphertext as additional data, so a row copied under another name
 * does not decrypt.
 */
export const secrets = pgTable('secrets', {
  name: text('name').primaryKey(),
  /** 12-byte GCM nonce, base64; fresh for every write. */
  nonce: text('nonce').notNull(),
  /** Ciphertext followed by the 16-byte GCM tag, base64. */
  ciphertext: text('ciphertext').notNull(),
  /** Fingerprint of the encryption key (not the key): tells which key a row needs after a key change. */
  keyId: text('key_id').notNull(),
  /** Bumped whenever the value changes; agents replace containers that hold an older version. */
  version: integer('version').notNull().default(1),
  sizeBytes: integer('size_bytes').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
