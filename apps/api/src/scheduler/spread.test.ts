import { describe, expect, it } from 'vitest';
import { SpreadPicker } from './spread.ts';

/** The reference: scan every host per pick (what placement did before the heap). */
function scan(hosts: { id: string; mine: number; load: number }[], room: Map<string, number>, n: number): (string | null)[] {
  const mine = new Map(hosts.map((h) => [h.id, h.mine]));
  const load = new Map(hosts.map((h) => [h.id, h.load]));
  const out: (string | null)[] = [];
  for (let k = 0; k < n; k++) {
    let best: string | null = null;
    for (const h of hosts) {
      if ((room.get(h.id) ?? 0) <= 0) continue;
      if (best === null) best = h.id;
      else {
        const a = mine.get(h.id)!, b = mine.get(best)!;
        if (a < b || (a === b && (load.get(h.id)! < load.get(best)! || (load.get(h.id) === load.get(best) && h.id < best)))) best = h.id;
      }
    }
    if (best) {
      mine.set(best, mine.get(best)! + 1);
      load.set(best, load.get(best)! + 1);
      room.set(best, room.get(best)! - 1);
    }
    out.push(best);
  }
  return out;
}

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('SpreadPicker', () => {
  it('picks exactly what a full scan picks, fits and ties included (200 random fleets)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const hosts = Array.from({ length: 1 + Math.floor(r() * 40) }, (_, i) => ({ id: `h${Math.floor(r() * 1000)}-${i}`, mine: Math.floor(r() * 3), load: Math.floor(r() * 4) }));
      const slots = new Map(hosts.map((h) => [h.id, Math.floor(r() * 6)]));
      const n = Math.floor(r() * 120);
      const expected = scan(hosts, new Map(slots), n);
      const room = new Map(slots);
      const picker = new SpreadPicker(hosts, (id) => room.get(id)! > 0, (id) => room.set(id, room.get(id)! - 1));
      expect(Array.from({ length: n }, () => picker.pick()), `seed ${seed}`).toEqual(expected);
    }
  });

  it('answers null once nothing fits, and books only the hosts it returns', () => {
    const booked: string[] = [];
    const picker = new SpreadPicker([{ id: 'a', mine: 0, load: 0 }, { id: 'b', mine: 0, load: 0 }], (id) => booked.filter((b) => b === id).length < 1, (id) => booked.push(id));
    expect([picker.pick(), picker.pick(), picker.pick()]).toEqual(['a', 'b', null]);
    expect(booked).toEqual(['a', 'b']);
  });
});
