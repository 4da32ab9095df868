import { createHash } from 'node:crypto';
import { and, asc, desc, eq, ne } from 'drizzle-orm';
import { canonicalJson, type ToolSpec } from '../../../../protocol/src/index.ts';
import { instances, tools, toolVersions } from '../../../../db/src/index.ts';
import { notFound } from '../errors.ts';
import { scheduleTool, type ScheduleNote } from '../scheduler/scheduler.ts';
import { recordScheduleNotes } from './scheduleNotes.ts';
import { bumpRevision } from './revision.ts';
import type { ServiceDeps } from './deps.ts';

export interface ToolView {
  name: string;
  version: number;
  spec: ToolSpec;
  createdAt: string;
  updatedAt: string;
}

export const specHash = (spec: ToolSpec) => createHash('sha256').update(canonicalJson(spec)).digest('hex');

export function createToolService({ db, feed, events }: ServiceDeps) {
  return {
    /** Same spec → unchanged; changed spec → new immutable version; replicas follow it unless pinned. */
    async put(name: string, spec: ToolSpec, actor: string): Promise<{ status: 'created' | 'updated' | 'unchanged'; tool: ToolView }> {
      const hash = specHash(spec);
      const notes: ScheduleNote[] = [];
      const res = await db.transaction(async (tx) => {
        notes.length = 0; // a retried transaction starts over
        // Insert-if-missing, then lock: two concurrent creates of one name serialize instead of colliding.
        await tx.insert(tools).values({ name, currentVersion: 0 }).onConflictDoNothing();
        const [cur] = await tx.select().from(tools).where(eq(tools.name, name)).for('update');
        const isNew = !cur || cur.currentVersion === 0;
        if (!isNew) {
          const [v] = await tx.select().from(toolVersions).where(and(eq(toolVersions.tool, name), eq(toolVersions.version, cur.currentVersion)));
          if (v?.specHash === hash) return { status: 'unchanged' as const, touched: new Set<string>() };
        }
        const version = (cur?.currentVersion ?? 0) + 1;
        await tx.update(tools).set({ currentVersion: version, updatedAt: new Date() }).where(eq(tools.name, name));
        await tx.insert(toolVersions).values({ tool: name, version, spec, specHash: hash });
        const touched = await scheduleTool(tx, name, await bumpRevision(tx), notes);
        return { status: isNew ? ('created' as const) : ('updated' as const), touched };
      });
      feed.publish(res.touched);
      // A new version of a deployed tool starts a rollout: say so (after the commit).
      await recordScheduleNotes(events, notes);
      const tool = await this.get(name);
      if (res.status !== 'unchanged') {
        await events.record({ kind: 'audit', actor, action: 'tool.put', target: name, outcome: 'ok', data: { version: tool.version } });
      }
      return { status: res.status, tool };
    },

    async get(name: string): Promise<ToolView> {
      const [row] = await db
        .select({ name: tools.name, version: tools.currentVersion, spec: toolVersions.spec, createdAt: tools.createdAt, updatedAt: tools.updatedAt })
        .from(tools)
        .innerJoin(toolVersions, and(eq(toolVersions.tool, tools.name), eq(toolVersions.version, tools.currentVersion)))
        .where(eq(tools.name, name));
      if (!row) throw notFound('tool');
      return view(row);
    },

    async list(): Promise<ToolView[]> {
      const rows = await db
        .select({ name: tools.name, version: tools.currentVersion, spec: toolVersions.spec, createdAt: tools.createdAt, updatedAt: tools.updatedAt })
        .from(tools)
        .innerJoin(toolVersions, and(eq(toolVersions.tool, tools.name), eq(toolVersions.version, tools.currentVersion)))
        .orderBy(asc(tools.name));
      return rows.map(view);
    },

    async versions(name: string) {
      return db.select({ version: toolVersions.version, specHash: toolVersions.specHash, createdAt: toolVersions.createdAt }).from(toolVersions).where(eq(toolVersions.tool, name)).orderBy(desc(toolVersions.version));
    },

    /** Removes the tool; its instances become tombstones so every host removes their containers. */
    async remove(name: string, actor: string): Promise<void> {
      const touched = await db.transaction(async (tx) => {
        const [cur] = await tx.select().from(tools).where(eq(tools.name, name)).for('update');
        if (!cur) throw notFound('tool');
        const revision = await bumpRevision(tx);
        const gone = await tx
          .update(instances)
          .set({ desired: 'removed', revision, updatedAt: new Date() })
          .where(and(eq(instances.tool, name), ne(instances.desired, 'removed')))
          .returning({ hostId: instances.hostId });
        await tx.delete(tools).where(eq(tools.name, name));
        return new Set(gone.map((g) => g.hostId ?? ''));
      });
      feed.publish(touched);
      await events.record({ kind: 'audit', actor, action: 'tool.delete', target: name, outcome: 'ok' });
    },
  };
}
export type ToolService = ReturnType<typeof createToolService>;

function view(r: { name: string; version: number; spec: ToolSpec; createdAt: Date; updatedAt: Date }): ToolView {
  return { name: r.name, version: r.version, spec: r.spec, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString() };
}

