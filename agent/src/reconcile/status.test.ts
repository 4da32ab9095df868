import { describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance } from '../../../protocol/src/index.ts';
import type { ObservedContainer } from '../docker/port.ts';
import { statusOf } from './status.ts';

const desired: DesiredInstance = {
  id: 'i1',
  tool: 'hog',
  version: 1,
  kind: 'replica',
  revision: 1,
  desired: 'running',
  spec: ToolSpecSchema.parse({ image: 'machete/busybox:test', resources: { memoryMb: 16 } }),
};
const container = (o: Partial<ObservedContainer>): ObservedContainer => ({
  id: 'c1',
  name: 'machete-hog-i1-v1',
  instanceId: 'i1',
  tool: 'hog',
  version: 1,
  revision: 1,
  kind: 'replica',
  state: 'exited',
  exitCode: 137,
  labels: {},
  ...o,
});
const one = (c: ObservedContainer, errors: Record<string, string> = {}) => statusOf([desired], [c], new Map(Object.entries(errors)), new Map())[0]!;

describe('statusOf: an OOM kill (SECURITY-CASES 18)', () => {
  it('reports a replica killed at its memory limit as failed, naming the memory and the limit', () => {
    expect(one(container({ oomKilled: true }))).toMatchObject({ state: 'failed', exitCode: 137, reason: "out of memory: killed at the tool's memory limit (16 MiB)" });
  });

  it('keeps the OOM kill as the reason while the restart is held back', () => {
    expect(one(container({ oomKilled: true }), { i1: 'restarting in 2s' }).reason).toBe("out of memory: killed at the tool's memory limit (16 MiB); restarting in 2s");
  });

  it('says nothing of memory for another SIGKILL, or once a container runs again', () => {
    expect(one(container({}))).toMatchObject({ state: 'failed', reason: null });
    expect(one(container({ state: 'running', exitCode: null, oomKilled: true }))).toMatchObject({ state: 'running', reason: null });
  });
});
