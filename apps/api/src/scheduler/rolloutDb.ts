import { and, eq, ne } from 'drizzle-orm';
import { deployments, instances, type Tx } from '../../../../db/src/index.ts';
import { ROLLOUT_STATES, type RolloutInstance, type RolloutRecord, type RolloutState } from './rollout.ts';

/** The rollout columns of a deployment row, for a select. */
export const recordColumns = {
  stable: deployments.stableVersion,
  rolloutFrom: deployments.rolloutFrom,
  rolloutTo: deployments.rolloutTo,
  rolloutState: deployments.rolloutState,
  rolloutReason: deployments.rolloutReason,
  rolloutStartedAt: deployments.rolloutStartedAt,
};
interface RecordRow {
  stable: number | null;
  rolloutFrom: number | null;
  rolloutTo: number | null;
  rolloutState: string | null;
  rolloutReason: string | null;
  rolloutStartedAt: Date | null;
}

const asState = (s: string | null): RolloutState | null => ((ROLLOUT_STATES as readonly string[]).includes(s ?? '') ? (s as RolloutState) : null);

export function recordOf(r: RecordRow | undefined): RolloutRecord {
  return {
    stable: r?.stable ?? null,
    from: r?.rolloutFrom ?? null,
    to: r?.rolloutTo ?? null,
    state: asState(r?.rolloutState ?? null),
    reason: r?.rolloutReason ?? null,
    startedAt: r?.rolloutStartedAt?.getTime() ?? null,
  };
}

const sameRecord = (a: RolloutRecord, b: RolloutRecord) =>
  a.stable === b.stable && a.from === b.from && a.to === b.to && a.state === b.state && a.reason === b.reason && a.startedAt === b.startedAt;

/**
 * Writes the record when it moved. Not desired state of any agent, so no revision: it says what the
 * rollout is doing, and only the control plane reads it.
 */
export async function saveRecord(tx: Tx, tool: string, before: RolloutRecord, after: RolloutRecord): Promise<void> {
  if (sameRecord(before, after)) return;
  await tx
    .update(deployments)
    .set({
      stableVersion: after.stable,
      rolloutFrom: after.from,
      rolloutTo: after.to,
      rolloutState: after.state,
      rolloutReason: after.reason,
      rolloutStartedAt: after.startedAt === null ? null : new Date(after.startedAt),
      rolloutUpdatedAt: new Date(),
    })
    .where(eq(deployments.tool, tool));
}

/** A tool's replicas that are not tombstoned, with what the rollout judges them by. */
export async function rolloutInstances(tx: Tx, tool: string): Promise<Omit<RolloutInstance, 'hostUp'>[]> {
  const rows = await tx
    .select({
      id: instances.id,
      hostId: instances.hostId,
      version: instances.version,
      desired: instances.desired,
      state: instances.state,
      runningVersion: instances.runningVersion,
      health: instances.health,
      restarts: instances.restarts,
      crashLoop: instances.crashLoop,
      exitCode: instances.exitCode,
      lastExitCode: instances.lastExitCode,
      reason: instances.reason,
      createdAt: instances.createdAt,
      runningSince: instances.runningSince,
    })
    .from(instances)
    .where(and(eq(instances.tool, tool), eq(instances.kind, 'replica'), ne(instances.desired, 'removed')));
  return rows.map((r) => ({
    ...r,
    desired: r.desired === 'stopped' ? ('stopped' as const) : ('running' as const),
    createdAt: r.createdAt.getTime(),
    runningSince: r.runningSince?.getTime() ?? null,
  }));
}
