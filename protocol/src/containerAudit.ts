import { z } from 'zod';
import { socketReason } from './sockets.ts';

/**
 * The live half of `machete audit`: CIS-style checks (Docker Benchmark section 5) of what an
 * engine actually runs, managed by MACHETE or not. Pure: the agent turns `docker inspect`
 * into ContainerFacts (agent/src/docker/auditContainers.ts); these rules judge them.
 */
export const ContainerFactsSchema = z.strictObject({
  id: z.string().max(128),
  name: z.string().max(256),
  image: z.string().max(512),
  /** Carries MACHETE's labels (created by an agent). */
  managed: z.boolean(),
  running: z.boolean(),
  privileged: z.boolean(),
  mounts: z.array(z.strictObject({ type: z.string().max(32), source: z.string().max(4096), destination: z.string().max(4096) })).max(1000),
  networkMode: z.string().max(256),
  pidMode: z.string().max(256),
  ipcMode: z.string().max(256),
  utsMode: z.string().max(256),
  usernsMode: z.string().max(256),
  memoryBytes: z.number().int().min(0),
  nanoCpus: z.number().int().min(0),
  cpuQuota: z.number().int(),
  capAdd: z.array(z.string().max(64)).max(100),
  securityOpt: z.array(z.string().max(1024)).max(100),
});
export type ContainerFacts = z.infer<typeof ContainerFactsSchema>;

export const CONTAINER_RULES = ['privileged', 'docker-socket', 'host-namespace', 'memory-limit', 'cpu-limit', 'dangerous-capability', 'no-new-privileges', 'unconfined-profile'] as const;
export type ContainerRule = (typeof CONTAINER_RULES)[number];
/** Every mount and capability can be a finding of its own, plus one per other rule. */
const MAX_FINDINGS = 1200;
/** Long enough for a message naming a mount source of the schema's maximum length. */
const MAX_FINDING_MESSAGE = 10_000;
export const ContainerFindingSchema = z.strictObject({
  rule: z.enum(CONTAINER_RULES),
  severity: z.enum(['high', 'medium']),
  container: z.string().max(256),
  message: z.string().max(MAX_FINDING_MESSAGE),
});
export type ContainerFinding = z.infer<typeof ContainerFindingSchema>;

/** One container as the live audit reports it: what was seen, and what the rules made of it. */
export const ContainerAuditSchema = z.strictObject({
  container: ContainerFactsSchema,
  findings: z.array(ContainerFindingSchema).max(MAX_FINDINGS),
});
export type ContainerAudit = z.infer<typeof ContainerAuditSchema>;

/** Capabilities that amount to host control or a container escape (shared with the compose audit). */
export const DANGEROUS_CAPS: ReadonlySet<string> = new Set(['ALL', 'SYS_ADMIN', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_PTRACE', 'SYS_BOOT', 'SYS_TIME', 'NET_ADMIN', 'NET_RAW', 'DAC_READ_SEARCH', 'DAC_OVERRIDE', 'BPF', 'PERFMON', 'MAC_ADMIN', 'MAC_OVERRIDE', 'SYSLOG', 'MKNOD', 'LINUX_IMMUTABLE', 'AUDIT_CONTROL', 'SETFCAP']);
export const normalizeCap = (c: string): string => c.trim().toUpperCase().replace(/^CAP_/, '');

const NAMESPACES = [
  ['networkMode', 'network'],
  ['pidMode', 'pid'],
  ['ipcMode', 'ipc'],
  ['utsMode', 'uts'],
  ['usernsMode', 'user'],
] as const;

/** Docker's last word on no-new-privileges among the security options. */
function noNewPrivileges(opts: readonly string[]): boolean {
  let on = false;
  for (const o of opts) {
    const m = /^\s*no-new-privileges\s*(?:[:=]\s*(\S*))?\s*$/i.exec(o);
    if (m) on = m[1] === undefined || m[1] === '' || /^(true|1)$/i.test(m[1]);
  }
  return on;
}

export function auditContainer(c: ContainerFacts): ContainerFinding[] {
  const out: ContainerFinding[] = [];
  const add = (rule: ContainerRule, severity: 'high' | 'medium', message: string) => out.push({ rule, severity, container: c.name, message });
  if (c.privileged) add('privileged', 'high', 'runs privileged: every device and capability of the host');
  for (const m of c.mounts) {
    const why = m.type === 'bind' ? socketReason(m.source) : null;
    if (why) add('docker-socket', 'high', `mounts ${m.source} (${why}) at ${m.destination}`);
  }
  for (const [key, ns] of NAMESPACES) {
    if (c[key].trim().toLowerCase() === 'host') add('host-namespace', 'high', `shares the host's ${ns} namespace`);
  }
  if (c.memoryBytes <= 0) add('memory-limit', 'medium', 'no memory limit');
  if (c.nanoCpus <= 0 && c.cpuQuota <= 0) add('cpu-limit', 'medium', 'no CPU limit');
  for (const cap of c.capAdd.map(normalizeCap).filter((x) => DANGEROUS_CAPS.has(x))) add('dangerous-capability', 'high', `adds capability ${cap}`);
  if (!noNewPrivileges(c.securityOpt)) add('no-new-privileges', 'medium', 'no-new-privileges is not set');
  for (const o of c.securityOpt) {
    if (/^\s*(seccomp|apparmor)\s*[:=]\s*unconfined\s*$/i.test(o)) add('unconfined-profile', 'high', `security option ${o.trim()}`);
  }
  return out;
}

const cut = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s);

/**
 * A ContainerAudit trimmed to the schema's bounds, so a report always passes the other side's
 * safeParse: an engine can hold longer values than the wire allows (an inline seccomp profile
 * in SecurityOpt runs to kilobytes). Judge first (auditContainer), then bound: findings are
 * made from the whole facts, only what travels is cut.
 */
export function boundedAudit(a: { container: ContainerFacts; findings: ContainerFinding[] }): ContainerAudit {
  const c = a.container;
  const container: ContainerFacts = {
    ...c,
    id: cut(c.id, 128),
    name: cut(c.name, 256),
    image: cut(c.image, 512),
    mounts: c.mounts.slice(0, 1000).map((m) => ({ type: cut(m.type, 32), source: cut(m.source, 4096), destination: cut(m.destination, 4096) })),
    networkMode: cut(c.networkMode, 256),
    pidMode: cut(c.pidMode, 256),
    ipcMode: cut(c.ipcMode, 256),
    utsMode: cut(c.utsMode, 256),
    usernsMode: cut(c.usernsMode, 256),
    capAdd: c.capAdd.slice(0, 100).map((x) => cut(x, 64)),
    securityOpt: c.securityOpt.slice(0, 100).map((x) => cut(x, 1024)),
  };
  const findings = keepEveryRule(a.findings, MAX_FINDINGS).map((f) => ({ ...f, container: cut(f.container, 256), message: cut(f.message, MAX_FINDING_MESSAGE) }));
  return { container, findings };
}

/** At most `max` findings, in their order; when some must go, the first of every rule stays. */
function keepEveryRule(all: ContainerFinding[], max: number): ContainerFinding[] {
  if (all.length <= max) return all;
  const seen = new Set<ContainerRule>();
  const firsts = new Set<number>();
  all.forEach((f, i) => {
    if (seen.has(f.rule)) return;
    seen.add(f.rule);
    firsts.add(i);
  });
  let room = max - firsts.size;
  return all.filter((_, i) => firsts.has(i) || room-- > 0);
}
