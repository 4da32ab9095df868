import { describe, expect, it } from 'vitest';
import { auditContainer, boundedAudit, ContainerAuditSchema, type ContainerFacts } from './containerAudit.ts';
import { MAX_AUDIT_CONTAINERS, parseAgentFrame, parseServerFrame } from './frames.ts';

const id = `a${'0f'.repeat(12)}`;
const facts: ContainerFacts = {
  id: 'c'.repeat(64),
  name: 'risky',
  image: 'busybox',
  managed: false,
  running: false,
  privileged: true,
  mounts: [{ type: 'bind', source: '/var/run/docker.sock', destination: '/var/run/docker.sock' }],
  networkMode: 'none',
  pidMode: 'host',
  ipcMode: 'private',
  utsMode: '',
  usernsMode: '',
  memoryBytes: 0,
  nanoCpus: 0,
  cpuQuota: 0,
  capAdd: [],
  securityOpt: [],
};
const entry = { container: facts, findings: auditContainer(facts) };
const report = (over: Record<string, unknown> = {}) => JSON.stringify({ type: 'auditReport', id, containers: [entry], ...over });

describe('live audit frames', () => {
  it('accepts an auditRequest from the server and an auditReport (with or without error) from an agent', () => {
    expect(parseServerFrame(JSON.stringify({ type: 'auditRequest', id }))).toMatchObject({ ok: true });
    const r = parseAgentFrame(report());
    expect(r).toMatchObject({ ok: true, frame: { type: 'auditReport', id, containers: [entry] } });
    expect(parseAgentFrame(report({ containers: [], error: 'engine error: connect ENOENT' }))).toMatchObject({ ok: true });
  });

  it.each([
    ['an id not of the server form', report({ id: 'a1' }), 'id'],
    ['an unknown rule', report({ containers: [{ ...entry, findings: [{ ...entry.findings[0], rule: 'fine' }] }] }), 'rule'],
    ['an extra field on a container', report({ containers: [{ ...entry, container: { ...facts, extra: 1 } }] }), 'invalid frame'],
    ['too many containers', report({ containers: Array(MAX_AUDIT_CONTAINERS + 1).fill(entry) }), 'containers'],
    ['an overlong error', report({ error: 'x'.repeat(1025) }), 'error'],
  ])('refuses from an agent a report with %s', (_n, raw, msg) => {
    const r = parseAgentFrame(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(msg);
  });

  it('refuses an auditRequest with extra fields or a forged id', () => {
    expect(parseServerFrame(JSON.stringify({ type: 'auditRequest', id, all: true })).ok).toBe(false);
    expect(parseServerFrame(JSON.stringify({ type: 'auditRequest', id: '../x' })).ok).toBe(false);
  });
});

describe('boundedAudit', () => {
  it('leaves an audit within bounds unchanged', () => {
    expect(boundedAudit(entry)).toEqual(entry);
  });

  it('cuts what the engine holds past the wire bounds (an inline seccomp profile), keeping the findings made from the whole', () => {
    const profile = `seccomp=${JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: 'x'.repeat(20_000) })}`;
    const big: ContainerFacts = { ...facts, securityOpt: [profile], capAdd: Array(150).fill('CHOWN'), name: 'n'.repeat(300), mounts: Array(1200).fill(facts.mounts[0]) };
    const a = { container: big, findings: auditContainer(big) };
    expect(ContainerAuditSchema.safeParse(a).success).toBe(false);
    const b = boundedAudit(a);
    expect(ContainerAuditSchema.safeParse(b).success).toBe(true);
    expect(b.container.securityOpt[0]).toHaveLength(1024);
    expect(b.container.capAdd).toHaveLength(100);
    expect(b.container.mounts).toHaveLength(1000);
    // Past the findings cap the first of every rule stays: the namespace and limit findings after 1,200 socket mounts too.
    expect(b.findings).toHaveLength(1200);
    expect(new Set(b.findings.map((f) => f.rule))).toEqual(new Set(a.findings.map((f) => f.rule)));
    expect(b.findings.map((f) => f.rule).slice(0, 2)).toEqual(['privileged', 'docker-socket']);
  });
});
