import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { oomMarker } from './oom.ts';
import type { ObservedContainer } from './port.ts';

/** An engine whose inspect answers the given OOMKilled verdicts in turn, counting the calls. */
function engine(verdicts: boolean[]) {
  let calls = 0;
  const docker = { getContainer: () => ({ inspect: async () => ({ State: { OOMKilled: verdicts[Math.min(calls++, verdicts.length - 1)] } }) }) } as unknown as Docker;
  return { docker, calls: () => calls };
}
const exited = (exitCode: number): ObservedContainer => ({ id: 'c1', exitCode, state: 'exited' }) as ObservedContainer;
const deadline = () => AbortSignal.timeout(1000);

describe('oomMarker', () => {
  it('asks again when the engine first says no: the OOM event can land after the exit', async () => {
    const e = engine([false, true]);
    const mark = oomMarker(e.docker, deadline);
    const first = [exited(137)];
    await mark(first);
    expect(first[0]!.oomKilled).toBeUndefined();
    const second = [exited(137)];
    await mark(second);
    expect(second[0]!.oomKilled).toBe(true);
    // A yes is final: no further inspect.
    await mark([exited(137)]);
    expect(e.calls()).toBe(2);
  });

  it('never inspects an exit that cannot be an OOM kill (not SIGKILL)', async () => {
    const e = engine([true]);
    const list = [exited(1), { ...exited(0), id: 'c2' }];
    await oomMarker(e.docker, deadline)(list);
    expect(e.calls()).toBe(0);
    expect(list.some((c) => c.oomKilled)).toBe(false);
  });
});
