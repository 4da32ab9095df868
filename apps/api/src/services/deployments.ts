import { and, asc, eq, ne } from 'drizzle-orm';
import { deployments, instances, tools, toolVersions } from '../../../../db/src/index.ts';
import { invalid, notFound } from '../errors.ts';
import { scheduleTool, type ScheduleNote } from '../scheduler/scheduler.ts';
import { recordScheduleNotes } from './scheduleNotes.ts';
import { recordColumns, recordOf } from '../scheduler/rolloutDb.ts';
import type { RolloutRecord, RolloutState } from '../scheduler/rollout.ts';
import { bumpRevision } from './revision.ts';
import type { ServiceDeps } from './deps.ts';
import { instanceView, type InstanceView } from './instances.ts';

export interface DeploymentView {
  tool: string;
  replicas: number;
  version: number | null;
  running: number;
  /** The latest rollout (null: none yet) and the last version every replica ran ready at once. */
  rollout: { state: RolloutState | null; from: number | null; to: number | null; stableVersion: number | null; reason: string | null; startedAt: string | null } | null;
  instances: InstanceView[];
}

export function createDeploymentService({ db, feed, events }: ServiceDeps) {
  const svc = {
    async put(tool: string, body: { replicas: number; version?: number | null }, actor: string): Promise<DeploymentView> {
      const notes: ScheduleNote[] = [];
      const touched = await db.transaction(async (tx) => {
        notes.length = 0; // a retried transaction starts over
        const [t] = await tx.select().from(tools).where(eq(tools.name, tool)).for('update');
        if (!t) throw notFound('tool');
        if (body.version != null) {
          const [v] = await tx.select({ v: toolVersions.version }).from(toolVersions).where(and(eq(toolVersions.tool, tool), eq(toolVersions.version, body.version)));
          if (!v) throw invalid('version', 'no such version of the tool');
        }
        const [cur] = await tx.select().from(deployments).where(eq(deployments.tool, tool));
        const version = body.version ?? null;
        // Same replicas and version: not a change, only a chance to place what is still pending.
        if (cur && cur.replicas === body.replicas && cur.version === version) return scheduleTool(tx, tool, undefined, notes);
        await tx
          .insert(deployments)
          .values({ tool, replicas: body.replicas, version: body.version ?? null })
          .onConflictDoUpdate({ target: deployments.tool, set: { replicas: body.replicas, version: body.version ?? null, updatedAt: new Date() } });
        return scheduleTool(tx, tool, await bumpRevision(tx), notes);
      });
      feed.publish(touched);
      await recordScheduleNotes(events, notes);
      await events.record({ kind: 'audit', actor, action: 'deployment.put', target: tool, outcome: 'ok', data: { replicas: body.replicas, version: body.version ?? null } });
      return svc.get(tool);
    },

    async get(tool: string): Promise<DeploymentView> {
      const [t] = await db
        .select({ name: tools.name, replicas: deployments.replicas, version: deployments.version, ...recordColumns })
        .from(tools)
        .leftJoin(deployments, eq(deployments.tool, tools.name))
        .where(eq(tools.name, tool));
      if (!t) throw notFound('tool');
      const rows = await db
        .select()
        .from(instances)
        .where(and(eq(instances.tool, tool), eq(instances.kind, 'replica'), ne(instances.desired, 'removed')))
        .orderBy(asc(instances.createdAt), asc(instances.id));
      const list = rows.map(instanceView);
      return {
        tool,
        replicas: t.replicas ?? 0,
        version: t.version ?? null,
        running: list.filter((i) => i.state === 'running' && i.runningVersion === i.version).length,
        rollout: rolloutView(recordOf(t)),
        instances: list,
      };
    },
  };
  return svc;
}
export type DeploymentService = ReturnType<typeof createDeploymentService>;

function rolloutView(r: RolloutRecord): DeploymentView['rollout'] {
  if (r.state === null && r.stable === null) return null;
  return { state: r.state, from: r.from, to: r.to, stableVersion: r.stable, reason: r.reason, startedAt: r.startedAt === null ? null : new Date(r.startedAt).toISOString() };
}
