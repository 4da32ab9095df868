import { describe, expect, it } from 'vitest';
import { HeartbeatFrame } from '../../../protocol/src/index.ts';
import { createPassStats } from './passStats.ts';

describe('reconcile pass stats', () => {
  it('hands over the passes since the last report once, then nothing until another pass', () => {
    const s = createPassStats();
    expect(s.take()).toBeUndefined();
    s.add(0.012, true);
    s.add(0.5, false);
    expect(s.take()).toEqual({ seconds: [0.012, 0.5], errors: 1 });
    expect(s.take()).toBeUndefined();
  });

  it('keeps the latest 256 durations but counts every failure, and stays a valid heartbeat', () => {
    const s = createPassStats();
    for (let i = 0; i < 1000; i++) s.add(i / 1000, i % 10 !== 0);
    const r = s.take()!;
    expect(r.seconds).toHaveLength(256);
    expect(r.seconds.at(-1)).toBe(0.999);
    expect(r.errors).toBe(100);
    expect(HeartbeatFrame.safeParse({ type: 'heartbeat', at: Date.now(), reconcile: r }).success).toBe(true);
  });
});
