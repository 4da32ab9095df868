import { describe, expect, it } from 'vitest';
import type { ServerFrame } from '../../../../protocol/src/index.ts';
import { AuditRelay, MAX_AUDITS_PER_HOST } from './audit.ts';

/** A relay whose "agents" are the hosts in `connected`; every frame sent is recorded. */
function relay(connected = new Set(['h1', 'h2'])) {
  const sent: { hostId: string; frame: ServerFrame }[] = [];
  const r = new AuditRelay((hostId, frame) => {
    if (!connected.has(hostId)) return false;
    sent.push({ hostId, frame });
    return true;
  });
  const idSentTo = (hostId: string, nth = 0) => {
    const f = sent.filter((s) => s.hostId === hostId)[nth]?.frame;
    if (f?.type !== 'auditRequest') throw new Error(`no auditRequest sent to ${hostId}`);
    return f.id;
  };
  return { r, sent, idSentTo };
}
const report = (id: string, over: { error?: string } = {}) => ({ type: 'auditReport' as const, id, containers: [], ...over });

describe('AuditRelay', () => {
  it('sends a fresh server-made id to each host and resolves with that host’s report', async () => {
    const { r, idSentTo } = relay();
    const p1 = r.ask('h1', 5_000);
    const p2 = r.ask('h2', 5_000);
    const [id1, id2] = [idSentTo('h1'), idSentTo('h2')];
    expect(id1).toMatch(/^a[0-9a-f]{24}$/);
    expect(id1).not.toBe(id2);
    expect(r.onReport('h2', report(id2, { error: 'engine error: boom' }))).toBe(true);
    expect(r.onReport('h1', report(id1))).toBe(true);
    expect(await p1).toEqual({ status: 'ok', containers: [] });
    expect(await p2).toEqual({ status: 'error', error: 'engine error: boom', containers: [] });
    expect(r.count('h1') + r.count('h2')).toBe(0);
  });

  it('ignores a report for an id it did not send, for another host’s id, and a second report for the same id', async () => {
    const { r, idSentTo } = relay();
    const p = r.ask('h1', 5_000);
    const id = idSentTo('h1');
    expect(r.onReport('h1', report(`a${'0'.repeat(24)}`))).toBe(false);
    // h2 learned h1's id somehow: it still cannot answer for h1.
    expect(r.onReport('h2', report(id))).toBe(false);
    expect(r.count('h1')).toBe(1);
    expect(r.onReport('h1', report(id))).toBe(true);
    expect(r.onReport('h1', report(id))).toBe(false);
    expect((await p).status).toBe('ok');
  });

  it('times out a host that does not answer, and ignores its late report', async () => {
    const { r, idSentTo } = relay();
    const t0 = Date.now();
    const out = await r.ask('h1', 50);
    expect(out).toEqual({ status: 'timeout', error: 'no report within 50ms', containers: [] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(r.onReport('h1', report(idSentTo('h1')))).toBe(false);
  });

  it('answers at once for a host that is not connected, and when the host disconnects', async () => {
    const { r } = relay();
    expect(await r.ask('h9', 5_000)).toEqual({ status: 'error', error: 'the host is not connected to this control plane', containers: [] });
    const p = r.ask('h1', 5_000);
    r.hostGone('h1');
    expect(await p).toEqual({ status: 'error', error: 'the host disconnected before it reported', containers: [] });
  });

  it('bounds the requests awaited from one host', async () => {
    const { r, sent } = relay();
    const waiting = Array.from({ length: MAX_AUDITS_PER_HOST }, () => r.ask('h1', 5_000));
    expect(await r.ask('h1', 5_000)).toMatchObject({ status: 'error', error: 'too many audits already waiting for this host' });
    expect(sent).toHaveLength(MAX_AUDITS_PER_HOST);
    r.closeAll();
    expect((await Promise.all(waiting)).map((o) => o.status)).toEqual(Array(MAX_AUDITS_PER_HOST).fill('error'));
  });
});
