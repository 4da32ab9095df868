import { boundedAudit, MAX_AUDIT_CONTAINERS, MAX_FRAME_BYTES, type AuditReport, type ContainerAudit } from '../../../protocol/src/index.ts';
import type { DockerPort } from '../docker/port.ts';

/** Bytes of containers one report may carry: half a frame leaves room for the envelope and JSON escaping. */
export const AUDIT_REPORT_BUDGET_BYTES = MAX_FRAME_BYTES / 2;

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 512);

/**
 * One auditReport frame from what the engine holds. Containers with findings go first, so a
 * report cut at the frame's bounds keeps what matters; the cut is said in `error`, never silent.
 */
export function fitReport(id: string, audits: ContainerAudit[], budgetBytes = AUDIT_REPORT_BUDGET_BYTES): AuditReport {
  const ordered = [...audits.filter((a) => a.findings.length > 0), ...audits.filter((a) => a.findings.length === 0)];
  const containers: ContainerAudit[] = [];
  let bytes = 0;
  for (const a of ordered) {
    if (containers.length >= MAX_AUDIT_CONTAINERS) break;
    const b = boundedAudit(a);
    const size = Buffer.byteLength(JSON.stringify(b)) + 1;
    if (bytes + size > budgetBytes) break;
    bytes += size;
    containers.push(b);
  }
  const left = audits.length - containers.length;
  const error = left > 0 ? `report truncated: ${left} of ${audits.length} containers did not fit in one frame` : undefined;
  return { type: 'auditReport', id, containers, ...(error ? { error } : {}) };
}

export interface AuditResponderDeps {
  port: DockerPort;
  /** Sends on the current connection; false when there is none (the server then times the request out). */
  send(frame: AuditReport): boolean;
  log?: { warn(fields: Record<string, unknown>, msg: string): void };
}

/**
 * Answers the control plane's auditRequest frames. Reads the engine only through the docker
 * port's read-only auditContainers(); an engine failure becomes a report with `error`, never a
 * crash. Requests that arrive while an inspection runs share it: the engine is read once for them.
 */
export class AuditResponder {
  private inFlight: Promise<ContainerAudit[]> | null = null;

  constructor(private readonly d: AuditResponderDeps) {}

  async request(id: string): Promise<void> {
    const inspection = (this.inFlight ??= this.d.port.auditContainers().finally(() => (this.inFlight = null)));
    let frame: AuditReport;
    try {
      frame = fitReport(id, await inspection);
    } catch (err) {
      frame = { type: 'auditReport', id, containers: [], error: `engine error: ${message(err)}` };
    }
    if (!this.d.send(frame)) this.d.log?.warn({ id }, 'audit report not sent: no connection to the control plane');
  }
}
