import { describe, expect, it } from 'vitest';
import { planWarm, type WarmSlot } from './warm.ts';

const slot = (id: string, hostId: string | null, version = 1): WarmSlot => ({ id, hostId, version });

describe('planWarm', () => {
  it('puts N slots on every eligible host', () => {
    const p = planWarm({ perHost: 2, version: 1, eligibleHosts: ['a', 'b'], slots: [] });
    expect(p.add.sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(p.update).toEqual([]);
    expect(p.remove).toEqual([]);
  });

  it('tops up, trims extras (highest ids first) and moves kept slots to the current version', () => {
    const p = planWarm({ perHost: 2, version: 3, eligibleHosts: ['a', 'b'], slots: [slot('w1', 'a', 2), slot('w2', 'a', 3), slot('w3', 'a', 2), slot('w4', 'b', 3)] });
    expect(p.remove).toEqual(['w3']);
    expect(p.update).toEqual(['w1']);
    expect(p.add).toEqual(['b']);
  });

  it('removes slots on hosts that are no longer eligible, or unplaced', () => {
    const p = planWarm({ perHost: 1, version: 1, eligibleHosts: ['b'], slots: [slot('w1', 'a'), slot('w2', null), slot('w3', 'b')] });
    expect(p.remove.sort()).toEqual(['w1', 'w2']);
    expect(p.add).toEqual([]);
  });

  it('removes every slot when warm drops to 0 or the tool has no version', () => {
    expect(planWarm({ perHost: 0, version: 1, eligibleHosts: ['a'], slots: [slot('w1', 'a')] }).remove).toEqual(['w1']);
    expect(planWarm({ perHost: 3, version: 0, eligibleHosts: ['a'], slots: [slot('w1', 'a')] })).toEqual({ add: [], update: [], remove: ['w1'] });
  });

  it('is a no-op when the pool already matches', () => {
    expect(planWarm({ perHost: 1, version: 2, eligibleHosts: ['a', 'b'], slots: [slot('w1', 'a', 2), slot('w2', 'b', 2)] })).toEqual({ add: [], update: [], remove: [] });
  });
});
