import { and, asc, eq, inArray, ne, type SQL } from 'drizzle-orm';
import type { InstanceState, InstanceStatus } from '../../../../protocol/src/index.ts';
import { instances, type Db } from '../../../../db/src/index.ts';

export interface InstanceView {
  id: string;
  tool: string;
  version: number;
  runningVersion: number | null;
  kind: string;
  hostId: string | null;
  desired: string;
  state: InstanceState;
  containerId: string | null;
  exitCode: number | null;
  restarts: number;
  reason: string | null;
  updatedAt: string;
}

export function instanceView(r: typeof instances.$inferSelect): InstanceView {
  return {
    id: r.id,
    tool: r.tool,
    version: r.version,
    runningVersion: r.runningVersion,
    kind: r.kind,
    hostId: r.hostId,
    desired: r.desired,
    state: r.state as InstanceState,
    containerId: r.containerId,
    exitCode: r.exitCode,
    restarts: r.restarts,
    reason: r.reason,
    updatedAt: r.updatedAt.toISOString(),
  };
}

export function createInstanceService(db: Db) {
  return {
    async list(filter: { tool?: string; host?: string }): Promise<InstanceView[]> {
      const where: SQL[] = [ne(instances.desired, 'removed')];
      if (filter.tool) where.push(eq(instances.tool, filter.tool));
      if (filter.host) where.push(eq(instances.hostId, filter.host));
      const rows = await db.select().from(instances).where(and(...where)).orderBy(asc(instances.tool), asc(instances.createdAt), asc(instances.id));
      return rows.map(instanceView);
    },

    /**
     * Applies an agent's report. Only instances placed on that host are touched; the ids that
     * belong elsewhere (or nowhere) are returned so the caller can refuse and audit them.
     */
    async applyStatus(hostId: string, report: InstanceStatus[]): Promise<{ foreign: string[] }> {
      if (!report.length) return { foreign: [] };
      const owned = await db
        .select({ id: instances.id })
        .from(instances)
        .where(and(eq(instances.hostId, hostId), inArray(instances.id, report.map((r) => r.id))));
      const mine = new Set(owned.map((o) => o.id));
      const now = new Date();
      await db.transaction(async (tx) => {
        for (const s of report) {
          if (!mine.has(s.id)) continue;
          await tx
            .update(instances)
            .set({ state: s.state, containerId: s.containerId, exitCode: s.exitCode, restarts: s.restarts, reason: s.reason, runningVersion: s.version, updatedAt: now })
            .where(eq(instances.id, s.id));
        }
      });
      return { foreign: report.filter((r) => !mine.has(r.id)).map((r) => r.id) };
    },
  };
}
export type InstanceService = ReturnType<typeof createInstanceService>;
