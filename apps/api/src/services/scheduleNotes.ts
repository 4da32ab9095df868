import type { ScheduleNote } from '../scheduler/scheduler.ts';
import type { EventLog } from './events.ts';

/**
 * Scheduler notes become lifecycle events, after the change they describe committed. A rollback
 * is recorded as an `error`: the version the operator asked for did not run.
 */
export async function recordScheduleNotes(events: EventLog, notes: readonly ScheduleNote[]): Promise<void> {
  for (const n of notes) {
    await events.record({ kind: 'lifecycle', actor: 'scheduler', action: n.action, target: n.target, outcome: n.outcome ?? 'ok', reason: n.reason, data: n.data });
  }
}
