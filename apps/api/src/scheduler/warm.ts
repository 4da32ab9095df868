import { randomBytes } from 'node:crypto';
import { and, eq, inArray, ne } from 'drizzle-orm';
import { hosts, instances, tools, toolVersions, type Tx } from '../../../../db/src/index.ts';
import { bumpRevision } from '../services/revision.ts';
import { eligible, type CandidateHost } from './place.ts';

/** Warm slot ids: `w` and 16 hex digits, told apart from replica ids (`i…`) at a glance. */
const newWarmSlotId = () => `w${randomBytes(8).toString('hex')}`;

/**
 * Warm sandboxes as desired state. `warm: N` in a tool's current spec becomes N instances of kind
 * 'warm' (slots) on every eligible host (ready, schedulable, matching the placement labels), so the
 * agents learn their pools from the same snapshot/delta stream as replicas: a new tool version moves
 * the slots to it (the agent replaces their sandboxes), a host that stops being eligible loses its
 * slots, and deleting the tool tombstones them like every other instance. The control plane never
 * learns which sandbox is idle: that changes per invocation and stays on the agent.
 */

export interface WarmSlot {
  id: string;
  hostId: string | null;
  version: number;
}

export interface WarmPlan {
  /** One host id per slot to create. */
  add: string[];
  /** Slots to move to the current version. */
  update: string[];
  remove: string[];
}

/** Pure: `perHost` slots on each eligible host at `version`; slots elsewhere go, extras go (highest ids first). */
export function planWarm(input: { perHost: number; version: number; eligibleHosts: readonly string[]; slots: readonly WarmSlot[] }): WarmPlan {
  const plan: WarmPlan = { add: [], update: [], remove: [] };
  const onHost = new Map<string, WarmSlot[]>(input.eligibleHosts.map((h) => [h, []]));
  for (const s of [...input.slots].sort((a, b) => a.id.localeCompare(b.id))) {
    const list = s.hostId === null ? undefined : onHost.get(s.hostId);
    if (list) list.push(s);
    else plan.remove.push(s.id);
  }
  const perHost = input.version > 0 ? input.perHost : 0;
  for (const [hostId, list] of onHost) {
    list.slice(perHost).forEach((s) => plan.remove.push(s.id));
    const kept = list.slice(0, perHost);
    kept.filter((s) => s.version !== input.version).forEach((s) => plan.update.push(s.id));
    for (let n = kept.length; n < perHost; n++) plan.add.push(hostId);
  }
  return plan;
}

/**
 * Makes one tool's warm slots match its current spec, inside the caller's transaction (which holds
 * the tool's row lock). Stamps changes with `revision`, bumping it once if none was given and
 * something changed; returns the revision used and the hosts whose desired state moved.
 */
export async function scheduleWarm(tx: Tx, tool: string, revision: number | undefined): Promise<{ touched: Set<string>; revision: number | undefined }> {
  const touched = new Set<string>();
  const [cur] = await tx
    .select({ version: tools.currentVersion, spec: toolVersions.spec })
    .from(tools)
    .leftJoin(toolVersions, and(eq(toolVersions.tool, tools.name), eq(toolVersions.version, tools.currentVersion)))
    .where(eq(tools.name, tool));
  const perHost = cur?.spec?.warm ?? 0;
  const version = cur?.spec ? cur.version : 0;
  const slots = await tx
    .select({ id: instances.id, hostId: instances.hostId, version: instances.version })
    .from(instances)
    .where(and(eq(instances.tool, tool), eq(instances.kind, 'warm'), ne(instances.desired, 'removed')));
  if (perHost === 0 && slots.length === 0) return { touched, revision };

  const rows = await tx.select({ id: hosts.id, status: hosts.status, schedulable: hosts.schedulable, labels: hosts.labels }).from(hosts);
  const labels = cur?.spec?.placement.labels ?? {};
  const eligibleHosts = rows.filter((h) => eligible({ ...h, load: 0 } as CandidateHost, labels)).map((h) => h.id);
  const plan = planWarm({ perHost, version, eligibleHosts, slots });
  if (!plan.add.length && !plan.update.length && !plan.remove.length) return { touched, revision };

  const rev = revision ?? (await bumpRevision(tx));
  const now = new Date();
  const hostOf = new Map(slots.map((s) => [s.id, s.hostId]));
  if (plan.remove.length) await tx.update(instances).set({ desired: 'removed', revision: rev, updatedAt: now }).where(inArray(instances.id, plan.remove));
  if (plan.update.length) await tx.update(instances).set({ version, revision: rev, updatedAt: now }).where(inArray(instances.id, plan.update));
  if (plan.add.length) {
    await tx.insert(instances).values(
      plan.add.map((hostId) => ({ id: newWarmSlotId(), tool, version, kind: 'warm', hostId, desired: 'running', revision: rev, state: 'pending' })),
    );
  }
  [...plan.remove, ...plan.update].forEach((id) => touched.add(hostOf.get(id) ?? ''));
  plan.add.forEach((h) => touched.add(h));
  touched.delete('');
  return { touched, revision: rev };
}
