import { and, asc, eq, inArray, ne, sql } from 'drizzle-orm';
import { MAX_SECRET_VALUE_BYTES, type SecretValue } from '../../../../protocol/src/index.ts';
import { instances, secrets, tools, toolVersions, type Tx } from '../../../../db/src/index.ts';
import { invalid, MacheteError, notFound } from '../errors.ts';
import type { SecretCipher } from '../secrets/cipher.ts';
import type { ServiceDeps } from './deps.ts';
import { bumpRevision } from './revision.ts';

/** What clients see of a secret: never its value. */
export interface SecretView {
  name: string;
  version: number;
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
}

type Row = typeof secrets.$inferSelect;
const view = (r: Row): SecretView => ({ name: r.name, version: r.version, sizeBytes: r.sizeBytes, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString() });
/** Tool versions whose spec names the secret (jsonb containment: no string matching on names). */
const namesSecret = (name: string) => sql`${toolVersions.spec}->'secrets' @> ${JSON.stringify([name])}::jsonb`;

/**
 * Secrets, encrypted at rest. Values enter through put() and leave only through valuesFor(),
 * which the agent hub and the invocation service call for the one host that runs a tool naming
 * them. Events record names and versions, never values.
 */
export function createSecretService({ db, feed, events }: ServiceDeps, cipher: SecretCipher) {
  /** Live instances whose tool version names `name`: they must get the new value (rotation). */
  async function rollUsers(tx: Tx, name: string): Promise<Set<string>> {
    const users = await tx
      .select({ id: instances.id })
      .from(instances)
      .innerJoin(toolVersions, and(eq(toolVersions.tool, instances.tool), eq(toolVersions.version, instances.version)))
      .where(and(ne(instances.desired, 'removed'), namesSecret(name)));
    if (!users.length) return new Set();
    const revision = await bumpRevision(tx);
    const moved = await tx
      .update(instances)
      .set({ revision, updatedAt: new Date() })
      .where(inArray(instances.id, users.map((u) => u.id)))
      .returning({ hostId: instances.hostId });
    return new Set(moved.flatMap((m) => (m.hostId ? [m.hostId] : [])));
  }

  return {
    /** Same value → unchanged; a new value bumps the version and rolls the instances that use it. */
    async put(name: string, value: string, actor: string): Promise<{ status: 'created' | 'updated' | 'unchanged'; secret: SecretView }> {
      const sizeBytes = Buffer.byteLength(value, 'utf8');
      if (sizeBytes > MAX_SECRET_VALUE_BYTES) throw invalid('value', `must be at most ${MAX_SECRET_VALUE_BYTES} bytes`);
      const res = await db.transaction(async (tx) => {
        const [cur] = await tx.select().from(secrets).where(eq(secrets.name, name)).for('update');
        if (cur && cur.keyId === cipher.keyId && cipher.open(name, cur) === value) return { status: 'unchanged' as const, row: cur, touched: new Set<string>() };
        const sealed = cipher.seal(name, value);
        const now = new Date();
        const [row] = cur
          ? await tx.update(secrets).set({ ...sealed, version: cur.version + 1, sizeBytes, updatedAt: now }).where(eq(secrets.name, name)).returning()
          : await tx.insert(secrets).values({ name, ...sealed, sizeBytes }).returning();
        const touched = cur ? await rollUsers(tx, name) : new Set<string>();
        return { status: cur ? ('updated' as const) : ('created' as const), row: row!, touched };
      });
      feed.publish(res.touched);
      if (res.status !== 'unchanged') {
        await events.record({ kind: 'audit', actor, action: 'secret.put', target: name, outcome: 'ok', data: { version: res.row.version, rolledHosts: res.touched.size } });
      }
      return { status: res.status, secret: view(res.row) };
    },

    async list(): Promise<SecretView[]> {
      return (await db.select().from(secrets).orderBy(asc(secrets.name))).map(view);
    },

    /** Refused (409) while a tool's current version names it: its instances would fail. */
    async remove(name: string, actor: string): Promise<void> {
      await db.transaction(async (tx) => {
        const [cur] = await tx.select({ name: secrets.name }).from(secrets).where(eq(secrets.name, name)).for('update');
        if (!cur) throw notFound('secret');
        const users = await tx
          .select({ tool: tools.name })
          .from(tools)
          .innerJoin(toolVersions, and(eq(toolVersions.tool, tools.name), eq(toolVersions.version, tools.currentVersion)))
          .where(namesSecret(name))
          .orderBy(asc(tools.name))
          .limit(20);
        if (users.length) throw new MacheteError('conflict', 'secret is named by a tool; change or delete the tool first', { tools: users.map((u) => u.tool) });
        await tx.delete(secrets).where(eq(secrets.name, name));
      });
      await events.record({ kind: 'audit', actor, action: 'secret.delete', target: name, outcome: 'ok' });
    },

    /** Throws a 400 naming `secrets.<i>` for the first name that has no secret. */
    async assertExist(names: readonly string[]): Promise<void> {
      if (!names.length) return;
      const found = new Set((await db.select({ name: secrets.name }).from(secrets).where(inArray(secrets.name, [...names]))).map((r) => r.name));
      const i = names.findIndex((n) => !found.has(n));
      if (i !== -1) throw invalid(`secrets.${i}`, 'no secret with this name exists');
    },

    /**
     * Decrypted values of the named secrets. Missing ones, and rows that no longer decrypt (another
     * key), are left out: the agent then refuses just the instances that need them, with the reason.
     */
    async valuesFor(names: readonly string[]): Promise<SecretValue[]> {
      if (!names.length) return [];
      const rows = await db.select().from(secrets).where(inArray(secrets.name, [...new Set(names)]));
      const out: SecretValue[] = [];
      for (const r of rows) {
        try {
          out.push({ name: r.name, value: cipher.open(r.name, r), version: r.version });
        } catch {
          // Reported by the agent as "secret not available"; the value is never in any message.
        }
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}
export type SecretService = ReturnType<typeof createSecretService>;
