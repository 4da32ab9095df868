import { describe, expect, it } from 'vitest';
import { planTool, type CandidateHost, type LiveInstance } from './place.ts';

const host = (id: string, over: Partial<CandidateHost> = {}): CandidateHost => ({ id, status: 'ready', schedulable: true, labels: {}, load: 0, ...over });
const inst = (id: string, hostId: string | null, version = 1): LiveInstance => ({ id, hostId, version });
const count = (hostIds: (string | null)[]) => hostIds.reduce<Record<string, number>>((m, h) => ({ ...m, [String(h)]: (m[String(h)] ?? 0) + 1 }), {});

describe('planTool', () => {
  it.each([
    { name: 'spreads new replicas evenly', replicas: 6, hosts: [host('a'), host('b'), host('c')], instances: [], want: { a: 2, b: 2, c: 2 } },
    { name: 'fills the emptiest host first', replicas: 3, hosts: [host('a'), host('b')], instances: [inst('x', 'a'), inst('y', 'a')], want: { a: 2, b: 1 } },
    { name: 'breaks ties by overall load', replicas: 1, hosts: [host('a', { load: 5 }), host('b', { load: 1 })], instances: [], want: { b: 1 } },
    { name: 'skips down, draining and unschedulable hosts', replicas: 3, hosts: [host('a', { status: 'down' }), host('b', { schedulable: false }), host('c', { status: 'draining' }), host('d')], instances: [], want: { d: 3 } },
    { name: 'treats placement labels as hard constraints', replicas: 2, labels: { zone: 'a' }, hosts: [host('a', { labels: { zone: 'a' } }), host('b', { labels: { zone: 'b' } })], instances: [], want: { a: 2 } },
  ])('$name', ({ replicas, hosts, instances, labels, want }) => {
    const p = planTool({ replicas, version: 1, placementLabels: labels ?? {}, instances, hosts });
    const placed = [...instances.map((i) => i.hostId), ...p.add.map((a) => a.hostId)];
    expect(count(placed)).toEqual(want);
    expect(p.remove).toEqual([]);
  });

  it('leaves replicas pending with a reason when nothing fits', () => {
    const p = planTool({ replicas: 2, version: 1, placementLabels: { gpu: 'yes' }, instances: [], hosts: [host('a')] });
    expect(p.add).toEqual([{ hostId: null }, { hostId: null }]);
    expect(p.pendingReason).toMatch(/placement/);
  });

  it('places pending instances once a host is eligible, instead of adding new ones', () => {
    const p = planTool({ replicas: 2, version: 1, placementLabels: {}, instances: [inst('p1', null), inst('p2', null)], hosts: [host('a'), host('b')] });
    expect(p.add).toEqual([]);
    expect(p.place.map((x) => x.hostId).sort()).toEqual(['a', 'b']);
  });

  it('removes pending first, then from the most crowded host', () => {
    const p = planTool({
      replicas: 2,
      version: 1,
      placementLabels: {},
      instances: [inst('a1', 'a'), inst('a2', 'a'), inst('a3', 'a'), inst('b1', 'b'), inst('p', null)],
      hosts: [host('a'), host('b')],
    });
    expect(p.remove).toHaveLength(3);
    expect(p.remove).toContain('p');
    expect(p.remove.filter((id) => id.startsWith('a'))).toHaveLength(2);
  });

  it('removes instances on hosts no longer eligible before healthy ones', () => {
    const p = planTool({ replicas: 1, version: 1, placementLabels: {}, instances: [inst('a1', 'a'), inst('b1', 'b')], hosts: [host('a', { status: 'down' }), host('b')] });
    expect(p.remove).toEqual(['a1']);
  });

  it('moves every kept instance to the target version in place', () => {
    const p = planTool({ replicas: 2, version: 3, placementLabels: {}, instances: [inst('a1', 'a', 2), inst('a2', 'a', 3)], hosts: [host('a')] });
    expect(p.update).toEqual(['a1']);
  });

  it('is a no-op when the state already matches', () => {
    const p = planTool({ replicas: 2, version: 1, placementLabels: {}, instances: [inst('a1', 'a'), inst('b1', 'b')], hosts: [host('a'), host('b')] });
    expect(p).toMatchObject({ add: [], place: [], update: [], remove: [] });
  });
});
