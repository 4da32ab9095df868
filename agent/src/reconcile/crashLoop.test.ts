import { describe, expect, it } from 'vitest';
import type { ObservedContainer } from '../docker/port.ts';
import { CrashLoop } from './crashLoop.ts';

const OPTS = { initialMs: 1_000, maxMs: 8_000, resetAfterMs: 10_000 };
const running = (instanceId: string, id: string): ObservedContainer =>
  ({ id, name: `/machete-${id}`, instanceId, tool: 'echo', version: 1, revision: 1, kind: 'replica', state: 'running', exitCode: null, labels: {} }) as ObservedContainer;
const desired = (...ids: string[]) => new Map(ids.map((id) => [id, true]));

/** One failure of container `cid` seen at `now`: held (returns the wait) or restarted (returns 0). */
function fail(c: CrashLoop, cid: string, now: number, exitCode = 1): number {
  const wait = c.heldFor('a', cid, now);
  if (wait > 0) c.noteHeld('a');
  else c.noteRestart('a', exitCode);
  return wait;
}

describe('CrashLoop (restart policy backoff)', () => {
  it('restarts the first failure at once and reports no crash loop for one blip', () => {
    const c = new CrashLoop(OPTS);
    expect(c.heldFor('a', 'c1', 0)).toBe(0);
    c.noteRestart('a', 137);
    expect(c.restarts.get('a')).toBe(1);
    expect(c.info('a')).toEqual({ crashLoop: false, backoffSeconds: null, lastExitCode: 137 });
  });

  it('holds later failures back for a wait that doubles per restart up to the maximum', () => {
    const c = new CrashLoop(OPTS);
    let now = 0;
    expect(fail(c, 'c1', now)).toBe(0); // restart 1, at once
    const waits: number[] = [];
    const backoffs: (number | null)[] = [];
    for (let n = 2; n <= 6; n++) {
      const cid = `c${n}`;
      const wait = fail(c, cid, now);
      waits.push(wait);
      expect(c.info('a').crashLoop).toBe(true);
      backoffs.push(c.info('a').backoffSeconds);
      now += wait;
      expect(c.heldFor('a', cid, now)).toBe(0); // the wait has elapsed for this failure
      c.noteRestart('a', 1);
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 8_000]);
    expect(backoffs).toEqual([1, 2, 4, 8, 8]);
    expect(c.restarts.get('a')).toBe(6);
    expect(c.info('a')).toEqual({ crashLoop: true, backoffSeconds: 8, lastExitCode: 1 });
  });

  it('counts the wait from when the failure was first seen, not from the previous start', () => {
    const c = new CrashLoop(OPTS);
    c.noteRestart('a', 1); // restarted at t=0; the next failure waits 1 s
    // The new container ran 5 s before failing: it still waits its full second.
    expect(c.heldFor('a', 'c2', 5_000)).toBe(1_000);
    expect(c.heldFor('a', 'c2', 5_600)).toBe(400); // later passes count down the same wait
    expect(c.heldFor('a', 'c2', 6_000)).toBe(0);
  });

  it('calls it a crash loop from the first hold-back, and from a second restart in a row', () => {
    const held = new CrashLoop(OPTS);
    held.noteRestart('a', 1);
    expect(held.info('a').crashLoop).toBe(false);
    expect(held.heldFor('a', 'c2', 0)).toBeGreaterThan(0);
    held.noteHeld('a');
    expect(held.info('a')).toMatchObject({ crashLoop: true, backoffSeconds: 1 });

    const twice = new CrashLoop(OPTS);
    twice.noteRestart('a', 2);
    twice.noteRestart('a', 3);
    expect(twice.info('a')).toEqual({ crashLoop: true, backoffSeconds: 2, lastExitCode: 3 });
  });

  it('clears the backoff once a container runs steadily for resetAfterMs, keeping the restart count', () => {
    const c = new CrashLoop(OPTS);
    c.noteRestart('a', 1);
    c.noteRestart('a', 1);
    expect(c.info('a').crashLoop).toBe(true);
    c.observe([running('a', 'c3')], desired('a'), 0);
    c.observe([running('a', 'c3')], desired('a'), 9_999);
    expect(c.info('a').crashLoop).toBe(true); // not steady long enough yet
    c.observe([running('a', 'c3')], desired('a'), 10_000);
    expect(c.info('a')).toEqual({ crashLoop: false, backoffSeconds: null, lastExitCode: 1 });
    expect(c.restarts.get('a')).toBe(2);
    expect(c.heldFor('a', 'c4', 10_001)).toBe(0); // the next failure restarts at once again
  });

  it('restarts the steady-running clock when the instance gets a new container', () => {
    const c = new CrashLoop(OPTS);
    c.noteRestart('a', 1);
    c.noteRestart('a', 1);
    c.observe([running('a', 'c1')], desired('a'), 0);
    c.observe([running('a', 'c2')], desired('a'), 10_000); // another container: its clock starts now
    expect(c.info('a').crashLoop).toBe(true);
    c.observe([running('a', 'c2')], desired('a'), 20_000);
    expect(c.info('a').crashLoop).toBe(false);
  });

  it('forgets instances that are no longer desired', () => {
    const c = new CrashLoop(OPTS);
    c.noteRestart('a', 1);
    c.noteRestart('a', 1);
    c.observe([], desired('b'), 0);
    expect(c.restarts.has('a')).toBe(false);
    expect(c.info('a')).toEqual({ crashLoop: false, backoffSeconds: null, lastExitCode: null });
  });
});
