import { describe, expect, it } from 'vitest';
import type { AuditResult } from '../client.ts';
import { liveFailed, liveRows, liveSummary, unansweredLines } from './live.ts';

type Entry = AuditResult['hosts'][number]['containers'][number];
const entry = (name: string, managed: boolean, findings: [rule: Entry['findings'][number]['rule'], severity: 'high' | 'medium', message: string][]): Entry => ({
  container: { id: `f00dcafe${name}0123456789abcdef`, name, image: 'i', managed, running: false, privileged: false, mounts: [], networkMode: 'none', pidMode: '', ipcMode: '', utsMode: '', usernsMode: '', memoryBytes: 1, nanoCpus: 1, cpuQuota: 0, capAdd: [], securityOpt: [] },
  findings: findings.map(([rule, severity, message]) => ({ rule, severity, container: name, message })),
});

const result: AuditResult = {
  hosts: [
    {
      hostId: 'h1',
      name: 'alpha',
      status: 'ok',
      containers: [
        entry('risky', false, [
          ['memory-limit', 'medium', 'no memory limit'],
          ['privileged', 'high', 'runs privileged'],
        ]),
        entry('tool', true, []),
        entry('', true, [['cpu-limit', 'medium', 'no CPU limit']]),
      ],
    },
    { hostId: 'h2', name: 'beta', status: 'timeout', error: 'no report within 10s', containers: [] },
  ],
  findings: 3,
};

describe('live audit output', () => {
  it('lists one row per finding, host by host, worst first, marking MACHETE’s own containers', () => {
    expect(liveRows(result)).toEqual([
      ['high', 'privileged', 'alpha', 'risky', 'runs privileged'],
      ['medium', 'memory-limit', 'alpha', 'risky', 'no memory limit'],
      // A container without a name is shown by its short id.
      ['medium', 'cpu-limit', 'alpha', 'f00dcafe0123 [managed]', 'no CPU limit'],
    ]);
  });

  it('names every host that did not report in full', () => {
    expect(unansweredLines(result)).toEqual(['host beta (h2): timeout — no report within 10s']);
    expect(liveSummary(result)).toBe('3 findings in 2 of 3 containers on 2 hosts; 1 host did not report in full');
  });

  it('fails on a finding or on a host that did not report, and passes a clean fleet', () => {
    expect(liveFailed(result)).toBe(true);
    const onlyTimeout: AuditResult = { hosts: [result.hosts[1]!], findings: 0 };
    expect(liveFailed(onlyTimeout)).toBe(true);
    const clean: AuditResult = { hosts: [{ hostId: 'h1', name: 'alpha', status: 'ok', containers: [entry('tool', true, [])] }], findings: 0 };
    expect(liveFailed(clean)).toBe(false);
    expect(liveRows(clean)).toEqual([]);
    expect(liveSummary(clean)).toBe('no findings in 1 container on 1 host');
    expect(liveSummary({ hosts: [], findings: 0 })).toBe('no hosts to audit: no agent is connected');
  });
});
