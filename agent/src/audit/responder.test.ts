import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { AuditReportFrame, ToolSpecSchema, type AuditReport, type ContainerAudit } from '../../../protocol/src/index.ts';
import { AgentConnection } from '../connection.ts';
import { createMemoryPort } from '../docker/memory.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import type { DockerPort } from '../docker/port.ts';
import { AuditResponder, fitReport } from './responder.ts';

const id = `a${'1'.repeat(24)}`;
const managedPayload = (instance: string) =>
  buildCreatePayload(
    { id: instance, tool: 'audited', version: 1, kind: 'replica', revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image: 'machete/busybox:test' }) },
    { hostId: 'h1', allowedMounts: [], engineEndpoint: '/var/run/docker.sock' },
  );
/** What someone ran on the engine by hand, MACHETE or no MACHETE. */
const riskyPayload = {
  name: 'by-hand',
  body: { Image: 'busybox', Labels: {}, HostConfig: { Privileged: true, Binds: ['/var/run/docker.sock:/var/run/docker.sock'], PidMode: 'host', NetworkMode: 'none' } },
};

function collect() {
  const sent: AuditReport[] = [];
  return { sent, send: (f: AuditReport) => (sent.push(f), true) };
}

describe('the memory port’s audit', () => {
  it('judges its containers as the engine port would: a hand-made risky one rule by rule, a MACHETE payload clean', async () => {
    const port = createMemoryPort();
    const managed = await port.create(managedPayload('i1'));
    await port.start(managed);
    await port.create(riskyPayload);
    const audits = await port.auditContainers();
    const byName = new Map(audits.map((a) => [a.container.name, a]));
    expect(byName.get('machete-audited-i1-v1')).toMatchObject({ container: { managed: true, running: true, networkMode: 'none' }, findings: [] });
    const risky = byName.get('by-hand')!;
    expect(risky.container).toMatchObject({ managed: false, running: false, privileged: true, pidMode: 'host' });
    expect(risky.findings.map((f) => f.rule).sort()).toEqual(['cpu-limit', 'docker-socket', 'host-namespace', 'memory-limit', 'no-new-privileges', 'privileged']);
    expect(port.calls.auditContainers).toBe(1);
  });
});

describe('fitReport', () => {
  const finding = { rule: 'privileged', severity: 'high', container: 'x', message: 'runs privileged' } as const;
  const audit = (name: string, findings = 0): ContainerAudit => ({
    container: { id: name, name, image: 'i', managed: false, running: true, privileged: false, mounts: [], networkMode: '', pidMode: '', ipcMode: '', utsMode: '', usernsMode: '', memoryBytes: 1, nanoCpus: 1, cpuQuota: 0, capAdd: [], securityOpt: [] },
    findings: Array(findings).fill(finding),
  });

  it('carries every container when they fit, and no error', () => {
    const r = fitReport(id, [audit('a'), audit('b', 1)]);
    expect(AuditReportFrame.safeParse(r).success).toBe(true);
    expect(r.error).toBeUndefined();
    expect(r.containers.map((c) => c.container.name).sort()).toEqual(['a', 'b']);
  });

  it('past its budget keeps the containers with findings first and says what was cut', () => {
    const list = [...Array.from({ length: 50 }, (_, i) => audit(`clean-${i}`)), audit('flagged', 2)];
    const one = Buffer.byteLength(JSON.stringify(list[0])) + 1;
    const r = fitReport(id, list, one * 10);
    expect(r.containers[0]!.container.name).toBe('flagged');
    expect(r.containers.length).toBeLessThan(11);
    expect(r.error).toBe(`report truncated: ${51 - r.containers.length} of 51 containers did not fit in one frame`);
  });
});

describe('AuditResponder', () => {
  it('answers each request id with its own report', async () => {
    const port = createMemoryPort();
    await port.create(riskyPayload);
    const out = collect();
    const r = new AuditResponder({ port, send: out.send });
    await r.request(id);
    expect(out.sent).toHaveLength(1);
    expect(out.sent[0]).toMatchObject({ type: 'auditReport', id, containers: [{ container: { name: 'by-hand' } }] });
    expect(AuditReportFrame.safeParse(out.sent[0]).success).toBe(true);
  });

  it('reads the engine once for requests that arrive while an inspection runs', async () => {
    const port = createMemoryPort();
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const slow: DockerPort = { ...port, auditContainers: async () => (await gate, port.auditContainers()) };
    const out = collect();
    const r = new AuditResponder({ port: slow, send: out.send });
    const both = Promise.all([r.request(`a${'2'.repeat(24)}`), r.request(`a${'3'.repeat(24)}`)]);
    release();
    await both;
    expect(port.calls.auditContainers).toBe(1);
    expect(out.sent.map((f) => f.id)).toEqual([`a${'2'.repeat(24)}`, `a${'3'.repeat(24)}`]);
    await r.request(id);
    expect(port.calls.auditContainers).toBe(2);
  });

  it('reports an engine failure as an error, never throws', async () => {
    const broken: DockerPort = { ...createMemoryPort(), auditContainers: async () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')) };
    const out = collect();
    await new AuditResponder({ port: broken, send: out.send }).request(id);
    expect(out.sent).toEqual([{ type: 'auditReport', id, containers: [], error: 'engine error: connect ENOENT /var/run/docker.sock' }]);
  });
});

describe('an auditRequest over the agent connection', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('is answered on the same socket by an auditReport for its id; a malformed request is refused unanswered', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    cleanup.push(() => new Promise((r) => wss.close(r)));
    const frames: { type: string; id?: string }[] = [];
    const sockets: WebSocket[] = [];
    wss.on('connection', (ws) => (sockets.push(ws), ws.on('message', (d) => frames.push(JSON.parse(d.toString())))));
    const port = createMemoryPort();
    await port.create(riskyPayload);
    const warned: string[] = [];
    const conn: AgentConnection = new AgentConnection({
      url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/api/v1/agent/connect`,
      token: () => 'token',
      hello: async () => ({ agentVersion: 't', hostName: 'h', labels: {}, capacity: { cpus: 1, memoryMb: 1 } }),
      onDesired() {},
      onDisconnected() {},
      onUnauthorized() {},
      onAuditRequest: (rid) => void audit.request(rid),
      log: { info() {}, warn: (_o, msg) => warned.push(msg) },
    });
    const audit = new AuditResponder({ port, send: (f) => conn.sendAuditReport(f) });
    cleanup.push(() => conn.stop());
    conn.start();
    await until(() => frames.some((f) => f.type === 'hello'));
    sockets[0]!.send(JSON.stringify({ type: 'auditRequest', id: 'not-an-audit-id' }));
    sockets[0]!.send(JSON.stringify({ type: 'auditRequest', id }));
    await until(() => frames.some((f) => f.type === 'auditReport'));
    expect(frames.filter((f) => f.type === 'auditReport')).toMatchObject([{ type: 'auditReport', id, containers: [{ container: { name: 'by-hand', privileged: true } }] }]);
    expect(warned).toContain('refused a frame from the control plane');
  });
});

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
