import { describe, expect, it } from 'vitest';
import { Coalescer } from './coalesce.ts';

describe('Coalescer', () => {
  it('admits the first of each key per window and summarises the repeats', () => {
    const c = new Coalescer<string>({ maxPerWindow: 10, maxKeys: 100 });
    expect(c.admit('a', 'a1')).toBe(true);
    expect(c.admit('a', 'a2')).toBe(false);
    expect(c.admit('a', 'a3')).toBe(false);
    expect(c.admit('b', 'b1')).toBe(true);
    expect(c.rollover()).toEqual({ summaries: [{ sample: 'a1', count: 2 }], overflow: 0 });
    expect(c.admit('a', 'a4')).toBe(true);
  });
  it('bounds events per window however many sources there are, counting every refusal', () => {
    const c = new Coalescer<number>({ maxPerWindow: 5, maxKeys: 50 });
    let admitted = 0;
    for (let i = 0; i < 10_000; i++) if (c.admit(`ip${i % 1000}`, i)) admitted++;
    const { summaries, overflow } = c.rollover();
    expect(admitted).toBe(5);
    expect(summaries.length).toBeLessThanOrEqual(5);
    expect(admitted + summaries.reduce((n, s) => n + s.count, 0) + overflow).toBe(10_000);
  });
});
