import type { ReconcileReport } from '../../../protocol/src/index.ts';

/** The latest pass durations kept between two heartbeats; older ones only count. */
const MAX_KEPT = 256;

/**
 * Reconcile passes between two heartbeats, for the control plane's metrics: the loop adds each
 * finished pass, the connection takes the report with its heartbeat (and starts afresh).
 * Bounded whatever the pass rate, and nothing to send when no pass ran.
 */
export function createPassStats() {
  let seconds: number[] = [];
  let errors = 0;
  return {
    add(durationSeconds: number, ok: boolean): void {
      if (seconds.length >= MAX_KEPT) seconds.shift();
      seconds.push(Math.max(0, Math.round(durationSeconds * 1e6) / 1e6));
      if (!ok) errors++;
    },
    take(): ReconcileReport | undefined {
      if (!seconds.length && !errors) return undefined;
      const report = { seconds, errors };
      seconds = [];
      errors = 0;
      return report;
    },
  };
}
export type PassStats = ReturnType<typeof createPassStats>;
