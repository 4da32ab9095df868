import { randomBytes } from 'node:crypto';
import type { AuditReport, ServerFrame } from '../../../../protocol/src/index.ts';
import type { HostAuditOutcome } from '../services/audit.ts';

export type { HostAuditOutcome };

/** Requests waiting for one host at once: each makes its agent inspect every container. */
export const MAX_AUDITS_PER_HOST = 4;

interface Pending {
  hostId: string;
  finish(o: HostAuditOutcome): void;
}

/**
 * The control plane's end of live audits: one random request id per host asked, known only to
 * the server. A report is taken only from the host the id was sent to and only while it is
 * awaited; late, replayed or invented ids are ignored, so an agent can answer nothing else.
 */
export class AuditRelay {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly send: (hostId: string, frame: ServerFrame) => boolean) {}

  /** Requests awaited from a host. */
  count(hostId: string): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.hostId === hostId) n++;
    return n;
  }

  /** Asks one host's agent for its report; never rejects: every failure is an outcome. */
  ask(hostId: string, timeoutMs: number): Promise<HostAuditOutcome> {
    if (this.count(hostId) >= MAX_AUDITS_PER_HOST) {
      return Promise.resolve({ status: 'error', error: 'too many audits already waiting for this host', containers: [] });
    }
    const id = `a${randomBytes(12).toString('hex')}`;
    return new Promise((resolve) => {
      const finish = (o: HostAuditOutcome) => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        resolve(o);
      };
      this.pending.set(id, { hostId, finish });
      // Set before anything can call finish (a report, or the failed send below).
      const timer = setTimeout(() => finish({ status: 'timeout', error: `no report within ${timeoutMs % 1000 ? `${timeoutMs}ms` : `${timeoutMs / 1000}s`}`, containers: [] }), timeoutMs);
      if (!this.send(hostId, { type: 'auditRequest', id })) finish({ status: 'error', error: 'the host is not connected to this control plane', containers: [] });
    });
  }

  /** An auditReport from a host; false (ignored) when its id is not one awaited from that host. */
  onReport(hostId: string, f: AuditReport): boolean {
    const p = this.pending.get(f.id);
    if (!p || p.hostId !== hostId) return false;
    p.finish(f.error ? { status: 'error', error: f.error, containers: f.containers } : { status: 'ok', containers: f.containers });
    return true;
  }

  /** The host's connection is gone: what was asked of it will not be answered. */
  hostGone(hostId: string, error = 'the host disconnected before it reported'): void {
    for (const p of [...this.pending.values()]) if (p.hostId === hostId) p.finish({ status: 'error', error, containers: [] });
  }

  closeAll(): void {
    for (const hostId of new Set([...this.pending.values()].map((p) => p.hostId))) this.hostGone(hostId, 'the server is shutting down');
  }
}
