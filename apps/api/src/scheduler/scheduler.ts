import { randomBytes } from 'node:crypto';
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import { deployments, hosts, instances, tools, toolVersions, type Db, type Tx } from '../../../../db/src/index.ts';
import { bumpRevision } from '../services/revision.ts';
import { scheduleWarm } from './warm.ts';
import { planTool, type CandidateHost, type ToolPlan } from './place.ts';

export const newInstanceId = () => `i${randomBytes(8).toString('hex')}`;

/** What a scheduling pass did that an operator should be told about (recorded as lifecycle events after commit). */
export interface ScheduleNote {
  action: 'replicas.lost' | 'replicas.replaced' | 'replicas.pending' | 'drain.originals.removed' | 'drain.waiting';
  target: string;
  reason: string;
  data: Record<string, unknown>;
}

// Inserts stay under PostgreSQL's 65,535 bind parameters (9 per row).
const INSERT_CHUNK = 5_000;

/**
 * Makes one tool's instances match its deployment, inside the caller's transaction.
 * Stamps changes with `revision` when the caller already bumped it for this transaction,
 * else bumps once if anything changed. Returns the hosts whose desired state moved.
 * `notes`, when given, collects what an operator should hear about (lost, replaced, pending).
 */
export async function scheduleTool(tx: Tx, tool: string, revision?: number, notes?: ScheduleNote[]): Promise<Set<string>> {
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
    .select({ id: instances.id, hostId: instances.hostId, version: instances.version, state: instances.state, reason: instances.reason })
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
    ...(spec ? { resources: { cpus: spec.spec.resources.cpus, memoryMb: spec.spec.resources.memoryMb } } : {}),
    instances: live,
    hosts: await candidateHosts(tx),
  });
  const now = new Date();
  // A new reason on a still-pending instance is observed state: no revision, no push.
  for (const r of plan.repend) await tx.update(instances).set({ reason: r.reason, updatedAt: now }).where(eq(instances.id, r.id));
  if (notes) notes.push(...notesFor(tool, plan, live));
  if (!plan.add.length && !plan.place.length && !plan.update.length && !plan.remove.length && !plan.lost.length) return touched;

  revision ??= await bumpRevision(tx);
  const hostOf = new Map(live.map((i) => [i.id, i.hostId]));
  const mark = (ids: string[]) => ids.forEach((id) => touched.add(hostOf.get(id) ?? ''));
  if (plan.lost.length) {
    // Tombstoned, so the host's agent stops these copies when it comes back (its next delta or snapshot omits them).
    await tx
      .update(instances)
      .set({ desired: 'removed', state: 'lost', reason: sql`'host ' || ${instances.hostId} || ' is down'`, revision, updatedAt: now })
      .where(inArray(instances.id, plan.lost));
    mark(plan.lost);
  }
  if (plan.remove.length) {
    await tx.update(instances).set({ desired: 'removed', revision, updatedAt: now }).where(inArray(instances.id, plan.remove));
    mark(plan.remove);
  }
  for (const p of plan.place) {
    await tx.update(instances).set({ hostId: p.hostId, revision, reason: null, updatedAt: now }).where(eq(instances.id, p.id));
    touched.add(p.hostId);
  }
  if (plan.update.length) {
    await tx.update(instances).set({ version, revision, updatedAt: now }).where(inArray(instances.id, plan.update));
    mark(plan.update);
  }
  const rows = plan.add.map((a) => ({
    id: newInstanceId(),
    tool,
    version,
    kind: 'replica',
    hostId: a.hostId,
    desired: 'running',
    revision,
    state: 'pending',
    reason: a.hostId ? null : plan.pendingReason,
  }));
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) await tx.insert(instances).values(rows.slice(i, i + INSERT_CHUNK));
  plan.add.forEach((a) => a.hostId && touched.add(a.hostId));
  touched.delete('');
  return touched;
}

function notesFor(tool: string, plan: ToolPlan, live: { id: string; hostId: string | null }[]): ScheduleNote[] {
  const notes: ScheduleNote[] = [];
  const hostOf = new Map(live.map((i) => [i.id, i.hostId]));
  const hostsOf = (ids: string[]) => [...new Set(ids.map((id) => hostOf.get(id)))];
  const placed = plan.add.filter((a) => a.hostId).map((a) => a.hostId);
  if (plan.lost.length) {
    notes.push({ action: 'replicas.lost', target: tool, reason: `host ${hostsOf(plan.lost).join(', ')} is down: replicas there are lost`, data: { instances: plan.lost, hosts: hostsOf(plan.lost) } });
  }
  if ((plan.lost.length || plan.leaving.length) && placed.length) {
    const why = plan.lost.length ? 'replacing replicas lost with their host' : 'starting replacements before stopping the originals on a draining host';
    notes.push({ action: 'replicas.replaced', target: tool, reason: why, data: { hosts: placed } });
  }
  if (plan.evacuated.length) {
    notes.push({ action: 'drain.originals.removed', target: tool, reason: 'replacements are running: stopping the originals on the draining host', data: { instances: plan.evacuated, hosts: hostsOf(plan.evacuated) } });
  }
  if (plan.leaving.length && (placed.length || plan.evacuated.length)) {
    notes.push({ action: 'drain.waiting', target: tool, reason: 'originals on the draining host stay until their replacements run', data: { instances: plan.leaving, hosts: hostsOf(plan.leaving) } });
  }
  if (plan.pendingReason && (plan.add.some((a) => !a.hostId) || plan.repend.length)) {
    notes.push({ action: 'replicas.pending', target: tool, reason: plan.pendingReason, data: { pending: plan.add.filter((a) => !a.hostId).length + plan.repend.length } });
  }
  return notes;
}

async function candidateHosts(tx: Tx): Promise<CandidateHost[]> {
  // What each host has reserved: the resources of every live instance's tool version on it.
  const rows = await tx
    .select({
      id: hosts.id,
      status: hosts.status,
      schedulable: hosts.schedulable,
      labels: hosts.labels,
      capacity: hosts.capacity,
      load: sql<number>`count(${instances.id})::int`,
      cpus: sql<number>`coalesce(sum((${toolVersions.spec}->'resources'->>'cpus')::float8), 0)::float8`,
      memoryMb: sql<number>`coalesce(sum((${toolVersions.spec}->'resources'->>'memoryMb')::int), 0)::int`,
    })
    .from(hosts)
    .leftJoin(instances, and(eq(instances.hostId, hosts.id), ne(instances.desired, 'removed')))
    .leftJoin(toolVersions, and(eq(toolVersions.tool, instances.tool), eq(toolVersions.version, instances.version)))
    .groupBy(hosts.id);
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    schedulable: r.schedulable,
    labels: r.labels,
    load: Number(r.load),
    capacity: r.capacity,
    allocated: { cpus: Number(r.cpus), memoryMb: Number(r.memoryMb) },
  }));
}

/**
 * Re-runs placement for every deployed tool (host came up or went down, drain, periodic sweep).
 * `onNotes` hears each tool's notes after its transaction committed.
 */
export async function scheduleAll(db: Db, onNotes?: (notes: ScheduleNote[]) => Promise<void>): Promise<Set<string>> {
  const names = await db.select({ name: tools.name }).from(tools);
  const touched = new Set<string>();
  for (const { name } of names) {
    const notes: ScheduleNote[] = [];
    const t = await db.transaction((tx) => scheduleTool(tx, name, undefined, notes));
    t.forEach((h) => touched.add(h));
    if (notes.length && onNotes) await onNotes(notes);
  }
  return touched;
}
