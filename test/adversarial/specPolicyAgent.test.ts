import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDockerodePort } from '../../agent/src/docker/dockerode.ts';
import { buildCreatePayload } from '../../agent/src/docker/payload.ts';
import { nodeHostFs } from '../../agent/src/policy/resolve.ts';
import { createReconciler, type Reconciler } from '../../agent/src/reconcile/loop.ts';
import { parseAllowedMounts, ToolSpecSchema, type DesiredInstance, type InstanceStatus } from '../../protocol/src/index.ts';
import { waitFor } from '../helpers/cluster.ts';

// AGT of SECURITY-CASES 1, 4–7, 10–12: the control plane is bypassed. Hostile desired instances
// are handed straight to the agent's reconcile loop (the same build and policy the agent runs),
// on the real engine. Each must be reported failed with the agent's reason, and nothing may be
// created on the engine. A valid instance in the same desired set proves the loop does create.
const mountRoot = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'machete-specpolicy-agt-')));
const A = path.join(mountRoot, 'allow');
const R = path.join(mountRoot, 'ro');
/** The agent's engine certificates, placed inside the allowlist on purpose: refused anyway. */
const CERTS = path.join(A, 'engine-certs');
// Where allowed mounts point; not `A` itself, an ancestor of the certificates and so refused too.
const DATA = path.join(A, 'data');
const HOST = `agt-${randomBytes(4).toString('hex')}`;

let docker: Docker;
let reconciler: Reconciler;
const statuses = new Map<string, InstanceStatus>();

/** A spec that passed the schema, then changed the way a compromised control plane would. */
function forged(id: string, forge: (spec: Record<string, any>, inst: Record<string, any>) => void): DesiredInstance {
  const inst: Record<string, any> = { id, tool: 'agt', version: 1, kind: 'replica', revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image: inject('testImage'), command: ['sleep', '3600'] }) };
  forge(inst.spec, inst);
  return inst as DesiredInstance;
}
const mount = (source: string, target = '/data', readOnly = true) => ({ source, target, readOnly });

const HOSTILE: Array<[string, DesiredInstance, RegExp]> = [
  ['case 1: ".." out of the allowlist', forged('c1', (s) => (s.mounts = [mount(`${A}/../../etc`)])), /mounts\[0\]: mount source contains "\.\." segments/],
  ['case 4: the engine socket', forged('c4a', (s) => (s.mounts = [mount(inject('dockerSocket'))])), /mounts\[0\]: mount source is a socket/],
  ['case 4: /var/run/docker.sock', forged('c4b', (s) => (s.mounts = [mount('/var/run/docker.sock')])), /mounts\[0\]: mount source is a sensitive host path/],
  ['case 4: a *.sock inside the allowlist', forged('c4c', (s) => (s.mounts = [mount(`${A}/x.sock`)])), /mounts\[0\]: mount source is a socket/],
  ['case 4: the engine certificates, allowlisted', forged('c4d', (s) => (s.mounts = [mount(`${CERTS}/key.pem`)])), /mounts\[0\]: mount source exposes the agent's credentials/],
  ['case 4: a symlink to the engine certificates', forged('c4e', (s) => (s.mounts = [mount(`${A}/innocent`)])), /mounts\[0\]: mount source exposes the agent's credentials \(after resolving symlinks\)/],
  ['case 5: /etc', forged('c5a', (s) => (s.mounts = [mount('/etc')])), /sensitive host path/],
  ['case 5: /', forged('c5b', (s) => (s.mounts = [mount('/')])), /sensitive host path/],
  ['case 6: target /run/secrets', forged('c6', (s) => (s.mounts = [mount(DATA, '/run/secrets')])), /mounts\[0\]: mount target is a protected container path/],
  ['case 7: nested targets', forged('c7', (s) => (s.mounts = [mount(DATA, '/data'), mount(DATA, '/data/sub')])), /mounts\[1\]: mount target nests with the target of mounts\[0\]/],
  ['case 10: write on an ro entry', forged('c10', (s) => (s.mounts = [mount(R, '/data', false)])), /mounts\[0\]: mount source is allowed read-only, write was requested/],
  ['case 11: a volume with bind options', forged('c11a', (s) => (s.mounts = [{ ...mount(A), type: 'volume', driverOpts: { type: 'none', o: 'bind', device: '/' } }])), /invalid instance at spec\.mounts\.0/],
  ['case 11: VolumesFrom', forged('c11b', (s) => (s.VolumesFrom = ['victim'])), /invalid instance at spec/],
  ['case 11: volumesFrom on the instance', forged('c11c', (_s, i) => (i.volumesFrom = ['victim'])), /invalid instance/],
  ['case 12: working directory under /proc', forged('c12a', (s) => (s.workingDir = '/proc/self')), /working directory is a protected container path/],
  ['case 12: working directory /sys', forged('c12b', (s) => (s.workingDir = '/sys')), /working directory is a protected container path/],
];
const VALID = forged('ok', (s) => ((s.mounts = [mount(DATA, '/data')]), (s.workingDir = '/data')));

beforeAll(async () => {
  mkdirSync(A, { recursive: true });
  mkdirSync(R, { recursive: true });
  mkdirSync(CERTS);
  mkdirSync(DATA);
  writeFileSync(path.join(CERTS, 'key.pem'), 'not a real key');
  symlinkSync(CERTS, path.join(A, 'innocent'));
  docker = new Docker({ socketPath: inject('dockerSocket') });
  const ctx = { hostId: HOST, allowedMounts: parseAllowedMounts(`${A}:rw,${R}:ro`), engineEndpoint: inject('dockerSocket'), protectedPaths: [CERTS], hostFs: nodeHostFs };
  reconciler = createReconciler({
    port: createDockerodePort({ socketPath: inject('dockerSocket') }),
    hostId: HOST,
    build: (inst) => buildCreatePayload(inst, ctx),
    onStatus: (changed) => changed.forEach((s) => statuses.set(s.id, s)),
    resyncMs: 60_000,
  });
  reconciler.start();
  reconciler.setDesired([...HOSTILE.map(([, inst]) => inst), VALID], 1, true);
  const undecided = () => [...HOSTILE.map(([, i]) => i.id).filter((id) => statuses.get(id)?.state !== 'failed'), ...(statuses.get('ok')?.state === 'running' ? [] : ['ok'])];
  await waitFor(async () => undecided().length === 0, 'every instance decided', 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; undecided: ${JSON.stringify(undecided().map((id) => statuses.get(id) ?? id))}`);
  });
}, 60_000);

afterAll(async () => {
  await reconciler?.stop();
  const left = await docker.listContainers({ all: true, filters: { label: [`machete.host=${HOST}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  rmSync(mountRoot, { recursive: true, force: true });
});

describe('the agent refuses hostile instances on its own (AGT)', () => {
  it.each(HOSTILE)('%s: reported failed with the reason, no container', async (_what, inst, reason) => {
    const s = statuses.get(inst.id)!;
    expect(s).toMatchObject({ state: 'failed', containerId: null });
    expect(s.reason).toMatch(/^refused: /);
    expect(s.reason).toMatch(reason);
    const created = await docker.listContainers({ all: true, filters: { label: [`machete.host=${HOST}`, `machete.instance=${inst.id}`] } });
    expect(created).toEqual([]);
  });

  it('runs the valid instance next to them: the refusals are the policy, not a broken loop', async () => {
    const [c] = await docker.listContainers({ filters: { label: [`machete.host=${HOST}`, 'machete.instance=ok'] } });
    expect(c).toBeDefined();
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.Config.WorkingDir).toBe('/data');
    expect(info.Mounts).toEqual([expect.objectContaining({ Source: DATA, Destination: '/data', RW: false })]);
  });
});
