import { and, asc, eq, ne, or, sql, type SQL } from 'drizzle-orm';
import type { HealthState, InstanceState, InstanceStatus } from '../../../../protocol/src/index.ts';
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
  /** none | starting | healthy | unhealthy (null until reported). */
  health: HealthState | null;
  /** Failing again and again under its restart policy; restarts wait `backoffSeconds`. */
  crashLoop: boolean;
  backoffSeconds: number | null;
  lastExitCode: number | null;
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
    health: r.health as HealthState | null,
    crashLoop: r.crashLoop,
    backoffSeconds: r.backoffSeconds,
    lastExitCode: r.lastExitCode,
    updatedAt: r.updatedAt.toISOString(),
  };
}

export function createInstanceService(db: Db) {
  return {
    async list(filter: { tool?: string; host?: string }): Promise<InstanceView[]> {
      // Lost replicas stay listed (state `lost`) while their host is down; once it is back, its agent has stopped them.
      const lostOnDownHost = and(eq(instances.state, 'lost'), sql`${instances.hostId} in (select id from hosts where status = 'down')`);
      const where: SQL[] = [or(ne(instances.desired, 'removed'), lostOnDownHost)!];
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
      // One statement for the whole report; the host_id condition is what confines an agent to its own instances.
      const rows = sql.join(
        report.map(
          (r) =>
            sql`(${r.id}::text, ${r.state}::text, ${r.containerId}::text, ${r.exitCode}::int, ${r.restarts}::int, ${r.reason}::text, ${r.version}::int, ${r.health ?? 'none'}::text, ${r.crashLoop ?? false}::boolean, ${r.backoffSeconds ?? null}::int, ${r.lastExitCode ?? null}::int)`,
        ),
        sql`, `,
      );
      const v = sql`(values ${rows}) as v(id, state, container_id, exit_code, restarts, reason, running_version, health, crash_loop, backoff_seconds, last_exit_code)`;
      const updated = await db
        .update(instances)
        .set({
          state: sql`v.state`,
          containerId: sql`v.container_id`,
          exitCode: sql`v.exit_code`,
          restarts: sql`v.restarts`,
          reason: sql`v.reason`,
          runningVersion: sql`v.running_version`,
          health: sql`v.health`,
          crashLoop: sql`v.crash_loop`,
          backoffSeconds: sql`v.backoff_seconds`,
          lastExitCode: sql`v.last_exit_code`,
          // A rollout waits until a new replica has run for a while: the clock starts when this
          // container is first reported running and survives reports that change something else.
          runningSince: sql`case when v.state <> 'running' then null when ${instances.runningSince} is not null and ${instances.containerId} is not distinct from v.container_id then ${instances.runningSince} else now() end`,
          updatedAt: sql`now()`,
        })
        .from(v)
        .where(and(eq(instances.id, sql`v.id`), eq(instances.hostId, hostId)))
        .returning({ id: instances.id });
      const mine = new Set(updated.map((u) => u.id));
      return { foreign: report.filter((r) => !mine.has(r.id)).map((r) => r.id) };
    },
  };
}
export type InstanceService = ReturnType<typeof createInstanceService>;
