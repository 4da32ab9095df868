import { describe, expect, it } from 'vitest';
import { jsonDepth, TokenBuckets } from './limits.ts';

describe('jsonDepth', () => {
  it.each([
    ['1', 0],
    ['{}', 1],
    ['[[],[[]]]', 3],
    ['{"a":{"b":[1,{"c":2}]}}', 4],
    ['["[[[[", "{{{{"]', 1],
    ['["\\"[[[", "\\\\", []]', 2],
  ])('measures %s as %i', (text, depth) => {
    expect(jsonDepth(text, 64)).toBe(depth);
  });
  it('stops counting just past the limit', () => {
    expect(jsonDepth('['.repeat(1_000_000), 64)).toBe(65);
  });
});

describe('TokenBuckets', () => {
  it('allows the burst, then one request per 1/rate seconds, and says how long to wait', () => {
    const b = new TokenBuckets({ perSecond: 2, burst: 3, maxKeys: 10 });
    expect([0, 0, 0].map(() => b.take('k', 1000))).toEqual([0, 0, 0]);
    expect(b.take('k', 1000)).toBe(500);
    expect(b.take('k', 1500)).toBe(0);
    expect(b.take('other', 1500)).toBe(0);
  });
  it('keeps at most maxKeys buckets, dropping idle full ones first', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 2, maxKeys: 100 });
    b.take('busy', 0);
    b.take('busy', 0);
    for (let i = 0; i < 10_000; i++) b.take(`k${i}`, 1);
    expect(b.size).toBeLessThanOrEqual(101);
  });
});
