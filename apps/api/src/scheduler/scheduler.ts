import { randomBytes } from 'node:crypto';
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import { deployments, hosts, instances, tools, toolVersions, type Db, type Tx } from '../../../../db/src/index.ts';
import { bumpRevision } from '../services/revision.ts';
import { scheduleWarm } from './warm.ts';
import { planTool, type CandidateHost } from './place.ts';

export const newInstanceId = () => `i${randomBytes(8).toString('hex')}`;

/**
 * Makes one tool's instances match its deployment, inside the caller's transaction.
 * Stamps changes with `revision` when the caller already bumped it for this transaction,
 * else bumps once if anything changed. Returns the hosts whose desired state moved.
 */
export async function scheduleTool(tx: Tx, tool: string, revision?: number): Promise<Set<string>> {
  const touched = new Set<string>();
  // Row lock: two schedulers for the same tool must not both add the missing replicas.
  await tx.select({ name: tools.name }).from(tools).where(eq(tools.name, tool)).for('update');
  // Warm slots follow the tool's current spec on every eligible host (warm.ts), under the same lock and revision.
  const warm = await scheduleWarm(tx, tool, revision);
  revision = warm.revision;
  warm.touched.forEach((h) => touched.add(h));
  const [dep] = await tx
    .select({ replicas: deployments.replicas, pinned: deployments.version, current: tools.currentVersion })
    .from(tools)
    .leftJoin(deployments, eq(deployments.tool, tools.name))
    .where(eq(tools.name, tool));
  const live = await tx
    .select({ id: instances.id, hostId: instances.hostId, version: instances.version })
    .from(instances)
    .where(and(eq(instances.tool, tool), eq(instances.kind, 'replica'), ne(instances.desired, 'removed')));
  const replicas = dep?.replicas ?? 0;
  const version = dep?.pinned ?? dep?.current ?? 0;
  if (replicas === 0 && live.length === 0) return touched;

  const [spec] = version
    ? await tx.select({ spec: toolVersions.spec }).from(toolVersions).where(and(eq(toolVersions.tool, tool), eq(toolVersions.version, version)))
    : [];
  const plan = planTool({
    replicas,
    version,
    placementLabels: spec?.spec.placement.labels ?? {},
    instances: live,
    hosts: await candidateHosts(tx),
  });
  if (!plan.add.length && !plan.place.length && !plan.update.length && !plan.remove.length) return touched;

  revision ??= await bumpRevision(tx);
  const now = new Date();
  const hostOf = new Map(live.map((i) => [i.id, i.hostId]));
  if (plan.remove.length) {
    await tx.update(instances).set({ desired: 'removed', revision, updatedAt: now }).where(inArray(instances.id, plan.remove));
    plan.remove.forEach((id) => touched.add(hostOf.get(id) ?? ''));
  }
  for (const p of plan.place) {
    await tx.update(instances).set({ hostId: p.hostId, revision, reason: null, updatedAt: now }).where(eq(instances.id, p.id));
    touched.add(p.hostId);
  }
  if (plan.update.length) {
    await tx.update(instances).set({ version, revision, updatedAt: now }).where(inArray(instances.id, plan.update));
    plan.update.forEach((id) => touched.add(hostOf.get(id) ?? ''));
  }
  if (plan.add.length) {
    await tx.insert(instances).values(
      plan.add.map((a) => ({
        id: newInstanceId(),
        tool,
        version,
        kind: 'replica',
        hostId: a.hostId,
        desired: 'running',
        revision,
        state: 'pending',
        reason: a.hostId ? null : plan.pendingReason,
      })),
    );
    plan.add.forEach((a) => a.hostId && touched.add(a.hostId));
  }
  touched.delete('');
  return touched;
}

async function candidateHosts(tx: Tx): Promise<CandidateHost[]> {
  const rows = await tx
    .select({
      id: hosts.id,
      status: hosts.status,
      schedulable: hosts.schedulable,
      labels: hosts.labels,
      load: sql<number>`(select count(*)::int from ${instances} where ${instances.hostId} = ${hosts.id} and ${instances.desired} <> 'removed')`,
    })
    .from(hosts);
  return rows.map((r) => ({ ...r, load: Number(r.load) }));
}

/** Re-runs placement for every deployed tool (host came up, periodic sweep). */
export async function scheduleAll(db: Db): Promise<Set<string>> {
  const names = await db.select({ name: tools.name }).from(tools);
  const touched = new Set<string>();
  for (const { name } of names) {
    const t = await db.transaction((tx) => scheduleTool(tx, name));
    t.forEach((h) => touched.add(h));
  }
  return touched;
}
