import type { ContainerAudit } from '../../../../protocol/src/index.ts';
import { MacheteError } from '../errors.ts';
import type { EventLog } from './events.ts';
import type { HostService } from './hosts.ts';

/** How long the agents get to report; a host that does not answer in time is listed as `timeout`. */
export const AUDIT_TIMEOUT_MS = 10_000;
/** Audits running at once on this control plane: each one makes every agent inspect its whole engine. */
export const MAX_CONCURRENT_AUDITS = 4;

/** What one host's agent answered to an audit request, or why it did not. */
export type HostAuditOutcome =
  | { status: 'ok'; containers: ContainerAudit[] }
  /** The agent reported a failure (engine unreachable, report cut), or could not be asked; `containers` holds what did arrive. */
  | { status: 'error'; error: string; containers: ContainerAudit[] }
  | { status: 'timeout'; error: string; containers: [] };

/** How the service reaches agents (the hub). */
export interface AuditTransport {
  connectedHosts(): Set<string>;
  audit(hostId: string, timeoutMs: number): Promise<HostAuditOutcome>;
}

export interface HostAudit {
  hostId: string;
  name: string;
  status: 'ok' | 'error' | 'timeout';
  error?: string;
  containers: ContainerAudit[];
}

export interface AuditResult {
  hosts: HostAudit[];
  /** Findings over every container of every host. */
  findings: number;
}

const NOT_CONNECTED = 'the host is not connected to this control plane (its agent is away, or connected to another replica)';

/**
 * The live half of `machete audit`: every agent connected here inspects every container on its
 * engine, managed or not, and the reports are gathered under one deadline. Hosts the database
 * believes up but that cannot be asked from here are listed with an error rather than left out;
 * hosts marked down have no agent to ask and are not listed (`GET /api/v1/hosts` shows them).
 */
export function createAuditService(deps: { hosts: HostService; events: EventLog }, transport: () => AuditTransport, timeoutMs = AUDIT_TIMEOUT_MS) {
  let running = 0;

  async function collect(): Promise<AuditResult> {
    const t = transport();
    const connected = t.connectedHosts();
    const known = await deps.hosts.list();
    const names = new Map(known.map((h) => [h.id, h.name]));
    // A connected agent always exists as a host row; the fallback only guards a race with its enrollment.
    const asked = [...known.filter((h) => connected.has(h.id)).map((h) => h.id), ...[...connected].filter((id) => !names.has(id))];
    const away = known.filter((h) => !connected.has(h.id) && h.status !== 'down');
    const outcomes = await Promise.all(asked.map((id) => t.audit(id, timeoutMs)));
    const hosts: HostAudit[] = [
      ...asked.map((id, i) => ({ hostId: id, name: names.get(id) ?? id, ...outcomes[i]! })),
      ...away.map((h): HostAudit => ({ hostId: h.id, name: h.name, status: 'error', error: NOT_CONNECTED, containers: [] })),
    ].sort((a, b) => a.name.localeCompare(b.name) || a.hostId.localeCompare(b.hostId));
    const findings = hosts.reduce((n, h) => n + h.containers.reduce((m, c) => m + c.findings.length, 0), 0);
    return { hosts, findings };
  }

  return {
    async run(actor: string): Promise<AuditResult> {
      if (running >= MAX_CONCURRENT_AUDITS) {
        throw new MacheteError('rate_limited', 'too many audits running; try again shortly', { retryAfterSeconds: Math.ceil(timeoutMs / 1000) });
      }
      running++;
      try {
        const result = await collect();
        const unanswered = result.hosts.filter((h) => h.status !== 'ok').map((h) => h.hostId);
        await deps.events.record({
          kind: 'audit',
          actor,
          action: 'audit.run',
          outcome: 'ok',
          data: { hosts: result.hosts.length, containers: result.hosts.reduce((n, h) => n + h.containers.length, 0), findings: result.findings, unanswered: unanswered.slice(0, 20) },
        });
        return result;
      } finally {
        running--;
      }
    },
  };
}
export type AuditService = ReturnType<typeof createAuditService>;
