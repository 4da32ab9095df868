import { describe, expect, it } from 'vitest';
import type { ContainerAudit } from '../../../../protocol/src/index.ts';
import { MacheteError } from '../errors.ts';
import { createAuditService, MAX_CONCURRENT_AUDITS, type AuditTransport, type HostAuditOutcome } from './audit.ts';
import type { EventInput, EventLog } from './events.ts';
import type { HostService, HostView } from './hosts.ts';

const host = (id: string, name: string, status: HostView['status']): HostView => ({
  id, name, status, labels: {}, schedulable: true, lastSeenAt: null, capacity: { cpus: 1, memoryMb: 1 }, allocated: { cpus: 0, memoryMb: 0, instances: 0 },
});
const container = (name: string, findings: number): ContainerAudit => ({
  container: { id: name, name, image: 'i', managed: false, running: true, privileged: findings > 0, mounts: [], networkMode: 'none', pidMode: '', ipcMode: '', utsMode: '', usernsMode: '', memoryBytes: 1, nanoCpus: 1, cpuQuota: 0, capAdd: [], securityOpt: ['no-new-privileges'] },
  findings: Array.from({ length: findings }, () => ({ rule: 'privileged' as const, severity: 'high' as const, container: name, message: 'runs privileged' })),
});

function setup(outcomes: Record<string, HostAuditOutcome | Promise<HostAuditOutcome>>, connected: string[]) {
  const recorded: EventInput[] = [];
  const asked: string[] = [];
  const hosts = { list: async () => [host('h2', 'beta', 'ready'), host('h1', 'alpha', 'ready'), host('h3', 'gamma', 'ready'), host('h4', 'delta', 'down')] } as unknown as HostService;
  const events = { record: async (e: EventInput) => void recorded.push(e) } as unknown as EventLog;
  const transport: AuditTransport = {
    connectedHosts: () => new Set(connected),
    audit: (id) => (asked.push(id), Promise.resolve(outcomes[id]!)),
  };
  return { svc: createAuditService({ hosts, events }, () => transport), recorded, asked };
}

describe('audit service', () => {
  it('asks every connected host, names up hosts it cannot ask, leaves down hosts out, and counts findings', async () => {
    const { svc, recorded, asked } = setup(
      {
        h1: { status: 'ok', containers: [container('risky', 2), container('fine', 0)] },
        h2: { status: 'timeout', error: 'no report within 10s', containers: [] },
      },
      ['h1', 'h2'],
    );
    const r = await svc.run('token:t1');
    expect(asked.sort()).toEqual(['h1', 'h2']);
    expect(r.findings).toBe(2);
    expect(r.hosts.map((h) => [h.name, h.status])).toEqual([
      ['alpha', 'ok'],
      ['beta', 'timeout'],
      ['gamma', 'error'],
    ]);
    expect(r.hosts[0]).toMatchObject({ hostId: 'h1', containers: [{ container: { name: 'risky' } }, { container: { name: 'fine' } }] });
    expect(r.hosts[2]!.error).toMatch(/not connected to this control plane/);
    expect(recorded).toEqual([
      { kind: 'audit', actor: 'token:t1', action: 'audit.run', outcome: 'ok', data: { hosts: 3, containers: 2, findings: 2, unanswered: ['h2', 'h3'] } },
    ]);
  });

  it(`refuses more than ${MAX_CONCURRENT_AUDITS} audits at once (rate_limited), and takes one again once they end`, async () => {
    let release = (_o: HostAuditOutcome) => {};
    const slow = new Promise<HostAuditOutcome>((r) => (release = r));
    const { svc } = setup({ h1: slow }, ['h1']);
    const running = Array.from({ length: MAX_CONCURRENT_AUDITS }, () => svc.run('token:t1'));
    const refused = await svc.run('token:t1').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MacheteError);
    expect(refused).toMatchObject({ code: 'rate_limited' });
    release({ status: 'ok', containers: [] });
    await Promise.all(running);
    expect((await svc.run('token:t1')).hosts[0]!.status).toBe('ok');
  });
});
