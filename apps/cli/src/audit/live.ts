import type { AuditResult } from '../client.ts';

/**
 * How `machete audit` (no --compose) shows the live audit of a running MACHETE: one row per
 * finding, host by host, worst first; hosts that did not report are named, never passed over.
 */
type Row = [severity: string, rule: string, host: string, container: string, finding: string];

const SEVERITY_ORDER: Record<string, number> = { high: 0, medium: 1, low: 2 };
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export const LIVE_HEADERS = ['SEVERITY', 'RULE', 'HOST', 'CONTAINER', 'FINDING'];

export function liveRows(r: AuditResult): Row[] {
  // Host by host in the server's order, worst first within each host (sort is stable).
  return r.hosts.flatMap((h) =>
    h.containers
      .flatMap((c) => {
        const name = `${c.container.name || c.container.id.slice(0, 12)}${c.container.managed ? ' [managed]' : ''}`;
        return c.findings.map((f) => ({ order: SEVERITY_ORDER[f.severity] ?? 9, row: [f.severity, f.rule, h.name, name, f.message] as Row }));
      })
      .sort((a, b) => a.order - b.order)
      .map((x) => x.row),
  );
}

/** One line per host that did not report in full. */
export function unansweredLines(r: AuditResult): string[] {
  return r.hosts.filter((h) => h.status !== 'ok').map((h) => `host ${h.name} (${h.hostId}): ${h.status}${h.error ? ` — ${h.error}` : ''}`);
}

export function liveSummary(r: AuditResult): string {
  if (r.hosts.length === 0) return 'no hosts to audit: no agent is connected';
  const containers = r.hosts.reduce((n, h) => n + h.containers.length, 0);
  const flagged = r.hosts.reduce((n, h) => n + h.containers.filter((c) => c.findings.length > 0).length, 0);
  const bad = r.hosts.filter((h) => h.status !== 'ok').length;
  const found = r.findings > 0 ? `${plural(r.findings, 'finding')} in ${flagged} of ${plural(containers, 'container')}` : `no findings in ${plural(containers, 'container')}`;
  return `${found} on ${plural(r.hosts.length, 'host')}${bad ? `; ${plural(bad, 'host')} did not report in full` : ''}`;
}

/** Exit 1 when anything was found or any host could not be audited. */
export const liveFailed = (r: AuditResult): boolean => r.findings > 0 || r.hosts.some((h) => h.status !== 'ok');
