import { describe, expect, it } from 'vitest';
import { planTool, type CandidateHost, type LiveInstance } from './place.ts';

const host = (id: string, over: Partial<CandidateHost> = {}): CandidateHost => ({ id, status: 'ready', schedulable: true, labels: {}, load: 0, ...over });
const inst = (id: string, hostId: string | null, version = 1, state = 'running'): LiveInstance => ({ id, hostId, version, state });
const count = (hostIds: (string | null)[]) => hostIds.reduce<Record<string, number>>((m, h) => ({ ...m, [String(h)]: (m[String(h)] ?? 0) + 1 }), {});

describe('planTool', () => {
  it.each([
    { name: 'spreads new replicas evenly', replicas: 6, hosts: [host('a'), host('b'), host('c')], instances: [], want: { a: 2, b: 2, c: 2 } },
    { name: 'fills the emptiest host first', replicas: 3, hosts: [host('a'), host('b')], instances: [inst('x', 'a'), inst('y', 'a')], want: { a: 2, b: 1 } },
    { name: 'breaks ties by overall load', replicas: 1, hosts: [host('a', { load: 5 }), host('b', { load: 1 })], instances: [], want: { b: 1 } },
    { name: 'skips down, draining and unschedulable hosts', replicas: 3, hosts: [host('a', { status: 'down' }), host('b', { schedulable: false }), host('c', { status: 'draining' }), host('d')], instances: [], want: { d: 3 } },
    { name: 'treats placement labels as hard constraints', replicas: 2, labels: { zone: 'a' }, hosts: [host('a', { labels: { zone: 'a' } }), host('b', { labels: { zone: 'b' } })], instances: [], want: { a: 2 } },
  ])('$name', ({ replicas, hosts, instances, labels, want }) => {
    const p = planTool({ replicas, placementLabels: labels ?? {}, instances, hosts });
    const placed = [...instances.map((i) => i.hostId), ...p.add.map((a) => a.hostId)];
    expect(count(placed)).toEqual(want);
    expect(p.remove).toEqual([]);
  });

  it('leaves replicas pending with a reason when nothing fits', () => {
    const p = planTool({ replicas: 2, placementLabels: { gpu: 'yes' }, instances: [], hosts: [host('a')] });
    expect(p.add).toEqual([{ hostId: null }, { hostId: null }]);
    expect(p.pendingReason).toMatch(/placement/);
  });

  it('places pending instances once a host is eligible, instead of adding new ones', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('p1', null), inst('p2', null)], hosts: [host('a'), host('b')] });
    expect(p.add).toEqual([]);
    expect(p.place.map((x) => x.hostId).sort()).toEqual(['a', 'b']);
  });

  it('removes pending first, then from the most crowded host', () => {
    const p = planTool({
      replicas: 2,
      placementLabels: {},
      instances: [inst('a1', 'a'), inst('a2', 'a'), inst('a3', 'a'), inst('b1', 'b'), inst('p', null)],
      hosts: [host('a'), host('b')],
    });
    expect(p.remove).toHaveLength(3);
    expect(p.remove).toContain('p');
    expect(p.remove.filter((id) => id.startsWith('a'))).toHaveLength(2);
  });

  it('removes instances on hosts no longer eligible before healthy ones', () => {
    const p = planTool({ replicas: 1, placementLabels: { zone: 'b' }, instances: [inst('a1', 'a'), inst('b1', 'b')], hosts: [host('a', { labels: { zone: 'a' } }), host('b', { labels: { zone: 'b' } })] });
    expect(p.remove).toEqual(['a1']);
  });

  it("never changes the version of an instance it keeps (versions are the rollout's call)", () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('a1', 'a', 2), inst('a2', 'a', 3)], hosts: [host('a')] });
    expect(p).toMatchObject({ add: [], place: [], remove: [], lost: [] });
    expect(p).not.toHaveProperty('update');
  });

  it('is a no-op when the state already matches', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('a1', 'a'), inst('b1', 'b')], hosts: [host('a'), host('b')] });
    expect(p).toMatchObject({ add: [], place: [], remove: [], lost: [] });
  });
});

const cap = (cpus: number, memoryMb: number, used: [number, number] = [0, 0]): Partial<CandidateHost> => ({ capacity: { cpus, memoryMb }, allocated: { cpus: used[0], memoryMb: used[1] } });
const small = { cpus: 0.5, memoryMb: 256 };

describe('planTool: lost hosts', () => {
  it('declares replicas on a down host lost and places replacements on the others', () => {
    const p = planTool({ replicas: 3, placementLabels: {}, instances: [inst('a1', 'a'), inst('b1', 'b'), inst('c1', 'c')], hosts: [host('a'), host('b'), host('c', { status: 'down' })] });
    expect(p.lost).toEqual(['c1']);
    expect(p.remove).toEqual([]);
    expect(p.add).toHaveLength(1);
    expect(['a', 'b']).toContain(p.add[0]!.hostId);
  });

  it('treats a vanished host like a down one', () => {
    const p = planTool({ replicas: 1, placementLabels: {}, instances: [inst('x1', 'gone')], hosts: [host('a')] });
    expect(p.lost).toEqual(['x1']);
    expect(p.add).toEqual([{ hostId: 'a' }]);
  });

  it('keeps lost replicas pending when no other host is eligible', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('a1', 'a'), inst('a2', 'a')], hosts: [host('a', { status: 'down' })] });
    expect(p.lost).toEqual(['a1', 'a2']);
    expect(p.add).toEqual([{ hostId: null }, { hostId: null }]);
    expect(p.pendingReason).toMatch(/no ready, schedulable host/);
  });
});

describe('planTool: drain', () => {
  const hosts = () => [host('a', { status: 'draining', schedulable: false }), host('b'), host('c')];
  it('starts replacements elsewhere and keeps the originals until they run', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('a1', 'a'), inst('a2', 'a')], hosts: hosts() });
    expect(p.add.map((a) => a.hostId).sort()).toEqual(['b', 'c']);
    expect(p.remove).toEqual([]);
    expect(p.leaving).toEqual(['a1', 'a2']);
  });

  it('removes one original per running replacement, never more', () => {
    const instances = [inst('a1', 'a'), inst('a2', 'a'), inst('b1', 'b', 1, 'running'), inst('c1', 'c', 1, 'starting')];
    const p = planTool({ replicas: 2, placementLabels: {}, instances, hosts: hosts() });
    expect(p.add).toEqual([]);
    expect(p.remove).toEqual(['a1']);
    expect(p.evacuated).toEqual(['a1']);
    expect(p.leaving).toEqual(['a2']);
  });

  it('finishes once every replacement runs', () => {
    const instances = [inst('a2', 'a'), inst('b1', 'b'), inst('c1', 'c')];
    const p = planTool({ replicas: 2, placementLabels: {}, instances, hosts: hosts() });
    expect(p.remove).toEqual(['a2']);
    expect(p.leaving).toEqual([]);
  });

  it('keeps the originals when nowhere else can take them', () => {
    const p = planTool({ replicas: 1, placementLabels: {}, instances: [inst('a1', 'a')], hosts: [host('a', { status: 'draining', schedulable: false })] });
    expect(p.remove).toEqual([]);
    expect(p.add).toEqual([{ hostId: null }]);
    expect(p.leaving).toEqual(['a1']);
  });

  it('cordon (schedulable false) stops new placements but moves nothing', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, instances: [inst('a1', 'a')], hosts: [host('a', { schedulable: false }), host('b')] });
    expect(p.remove).toEqual([]);
    expect(p.add).toEqual([{ hostId: 'b' }]);
  });
});

describe('planTool: capacity', () => {
  it('counts what each replica reserves and leaves the rest pending with the reason', () => {
    const p = planTool({ replicas: 5, placementLabels: {}, resources: small, instances: [], hosts: [host('a', cap(1, 4096)), host('b', cap(2, 4096, [1, 256]))] });
    expect(count(p.add.map((a) => a.hostId))).toEqual({ a: 2, b: 2, null: 1 });
    expect(p.pendingReason).toMatch(/insufficient capacity: no eligible host has 0.5 CPU and 256 MB free \(2 eligible\)/);
  });

  it('counts memory as well as CPU', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, resources: { cpus: 0.1, memoryMb: 600 }, instances: [], hosts: [host('a', cap(8, 1024)), host('b', cap(8, 1024, [0, 500]))] });
    expect(p.add).toEqual([{ hostId: 'a' }, { hostId: null }]);
  });

  it('prefers spreading over packing among hosts with room', () => {
    const p = planTool({ replicas: 3, placementLabels: {}, resources: small, instances: [], hosts: [host('a', cap(8, 8192)), host('b', cap(8, 8192)), host('c', cap(8, 8192))] });
    expect(count(p.add.map((a) => a.hostId))).toEqual({ a: 1, b: 1, c: 1 });
  });

  it('skips a full host even when it holds fewer replicas of the tool', () => {
    const p = planTool({ replicas: 2, placementLabels: {}, resources: small, instances: [inst('b1', 'b')], hosts: [host('a', cap(1, 4096, [1, 0])), host('b', cap(4, 4096))] });
    expect(p.add).toEqual([{ hostId: 'b' }]);
  });

  it('does not count against a host whose capacity is unknown', () => {
    const p = planTool({ replicas: 3, placementLabels: {}, resources: { cpus: 64, memoryMb: 1 << 20 }, instances: [], hosts: [host('a', cap(0, 0))] });
    expect(p.add).toEqual([{ hostId: 'a' }, { hostId: 'a' }, { hostId: 'a' }]);
  });

  it('places a pending instance once room appears and updates a stale reason otherwise', () => {
    const pending = [{ ...inst('p1', null), reason: 'old' }, { ...inst('p2', null), reason: 'old' }];
    const p = planTool({ replicas: 2, placementLabels: {}, resources: small, instances: pending, hosts: [host('a', cap(0.5, 1024))] });
    expect(p.place).toEqual([{ id: 'p1', hostId: 'a' }]);
    expect(p.repend).toEqual([{ id: 'p2', reason: p.pendingReason }]);
  });

  it('treats placement labels as hard constraints even when other hosts have room', () => {
    const p = planTool({ replicas: 1, placementLabels: { gpu: 'yes' }, resources: small, instances: [], hosts: [host('a', { ...cap(0.1, 64), labels: { gpu: 'yes' } }), host('b', cap(8, 8192))] });
    expect(p.add).toEqual([{ hostId: null }]);
    expect(p.pendingReason).toMatch(/insufficient capacity.*1 eligible/);
  });
});
