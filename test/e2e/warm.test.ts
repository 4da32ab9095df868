import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// Warm sandboxes end to end: tool `warm: N` → scheduler slots → agent pool on a real dockerd →
// invocations exec'd in an idle sandbox, which is then discarded and refilled.
let cluster: TestCluster;
let docker: Docker;
const image = () => inject('testImage');

/** Warm containers of a tool on this cluster's host (running only unless `all`). */
async function warmContainers(tool: string, all = false): Promise<Docker.ContainerInfo[]> {
  const label = ['machete.kind=warm', `machete.tool=${tool}`, `machete.host=${cluster.agent!.hostId}`];
  return docker.listContainers({ all, filters: { label } });
}
const ids = async (tool: string) => new Set((await warmContainers(tool)).map((c) => c.Id));
/** Docker sets a container's hostname to the first 12 characters of its id: it names the sandbox that ran. */
const ranIn = (stdout: string, pool: Set<string>) => [...pool].find((id) => id.startsWith(stdout.trim().split('\n')[0]!)) ?? null;
const poolFull = (tool: string, n: number, not: Set<string> = new Set()): Promise<Set<string>> =>
  waitFor(async () => {
    const now = await ids(tool);
    return now.size === n && [...now].every((id) => !not.has(id)) ? now : null;
  }, `${n} idle warm sandboxes of ${tool}`, 30_000);
const invoke = (tool: string, body: Record<string, unknown>) => cluster.api('POST', `/api/v1/tools/${tool}/invoke`, body);

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  docker = cluster.docker;
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
  await cluster.api('PUT', '/api/v1/tools/wsh', { image: image(), command: ['sh', '-c'], warm: 2, timeoutSeconds: 20 });
});
afterAll(() => cluster?.close());

describe('warm sandboxes on a real engine', () => {
  it('keeps N started, idle sandboxes per host, labelled warm and locked down like any container', async () => {
    const pool = await poolFull('wsh', 2);
    const slots = (await cluster.api('GET', '/api/v1/instances?tool=wsh')).body.filter((i: any) => i.kind === 'warm');
    expect(slots).toHaveLength(2);
    for (const id of pool) {
      const c = await docker.getContainer(id).inspect();
      expect(c.State.Running).toBe(true);
      expect(c.Config.Labels).toMatchObject({ 'machete.managed': 'true', 'machete.kind': 'warm', 'machete.tool': 'wsh', 'machete.host': cluster.agent!.hostId });
      expect(slots.map((s: any) => s.id)).toContain(c.Config.Labels['machete.instance']);
      expect(c.HostConfig).toMatchObject({ CapDrop: ['ALL'], ReadonlyRootfs: true, NetworkMode: 'none', Init: true, SecurityOpt: ['no-new-privileges:true'] });
      expect(c.Config.User).toBe('65534:65534');
    }
    await waitFor(async () => (await cluster.api('GET', '/api/v1/instances?tool=wsh')).body.filter((i: any) => i.kind === 'warm' && i.state === 'running').length === 2, 'slots reported running');
  });

  it('runs an invocation in an idle sandbox, then discards it and refills the slot', async () => {
    const before = await poolFull('wsh', 2);
    const r = await invoke('wsh', { args: ['cat /etc/hostname; id -u; echo left > /tmp/mark'] });
    expect(r.body).toMatchObject({ status: 'succeeded', exitCode: 0, hostId: cluster.agent!.hostId });
    const used = ranIn(r.body.stdout, before);
    expect(used).not.toBeNull();
    expect(r.body.stdout.split('\n')[1]).toBe('65534');
    await waitFor(async () => (await docker.listContainers({ all: true, filters: { id: [used!] } })).length === 0, 'used sandbox removed');
    const after = await poolFull('wsh', 2, new Set([used!]));
    expect([...after].filter((id) => !before.has(id))).toHaveLength(1);
  });

  it('shares nothing between invocations: a file left in /tmp by one is not seen by the next', async () => {
    const pool = await poolFull('wsh', 2);
    const first = await invoke('wsh', { args: ['cat /etc/hostname; echo secret > /tmp/f; cat /tmp/f'] });
    expect(first.body.stdout).toMatch(/secret/);
    const second = await invoke('wsh', { args: ['cat /etc/hostname; cat /tmp/f 2>/dev/null || echo none'] });
    expect(second.body.stdout.trim().split('\n')[1]).toBe('none');
    expect(ranIn(first.body.stdout, pool)).not.toBeNull();
    expect(ranIn(second.body.stdout, pool)).not.toBeNull();
    expect(ranIn(second.body.stdout, pool)).not.toBe(ranIn(first.body.stdout, pool));
  });

  it('keeps exit codes, stdout/stderr, stdin, args and timeouts exactly as cold runs do', async () => {
    await poolFull('wsh', 2);
    const fail = await invoke('wsh', { args: ['echo out; echo err >&2; exit 7'] });
    expect(fail.body).toMatchObject({ status: 'failed', exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
    await poolFull('wsh', 2);
    const cat = await invoke('wsh', { args: ['cat'], stdin: 'hello\nworld' });
    expect(cat.body).toMatchObject({ status: 'succeeded', stdout: 'hello\nworld' });
    await poolFull('wsh', 2);
    const args = ['a b', "it's", '$HOME', 'x;rm -rf /', '"q"'];
    const printed = await invoke('wsh', { args: ['cat /etc/hostname; printf "%s|" "$@"', 'sh', ...args] });
    expect(printed.body.stdout.split('\n')[1]).toBe(`${args.join('|')}|`);
    const pool = await poolFull('wsh', 2);
    const t0 = Date.now();
    const slow = await invoke('wsh', { args: ['sleep 30'], timeoutSeconds: 1 });
    expect(slow.body.status).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(8_000);
    // The sandbox it ran in was killed with it and removed.
    await waitFor(async () => {
      const all = await warmContainers('wsh', true);
      return all.length === 2 && all.every((c) => c.State === 'running') && [...pool].some((id) => !all.some((c) => c.Id === id));
    }, 'timed-out sandbox removed and its slot refilled');
  });

  it('falls back to a cold start when no warm sandbox is free', async () => {
    const pool = await poolFull('wsh', 2);
    const runs = await Promise.all(Array.from({ length: 4 }, () => invoke('wsh', { args: ['cat /etc/hostname; sleep 1'] })));
    expect(runs.map((r) => r.body.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    const warm = runs.filter((r) => ranIn(r.body.stdout, pool));
    expect(warm.length).toBeGreaterThanOrEqual(1);
    expect(warm.length).toBeLessThanOrEqual(2);
    expect(new Set(runs.map((r) => r.body.stdout)).size).toBe(4);
    await waitFor(async () => (await docker.listContainers({ all: true, filters: { label: ['machete.kind=invocation'] } })).length === 0, 'cold containers removed');
  });

  it('replaces stale sandboxes on a rollout and removes them all when the tool is deleted', async () => {
    await cluster.api('PUT', '/api/v1/tools/wroll', { image: image(), command: ['sh', '-c'], warm: 1 });
    const v1 = await poolFull('wroll', 1);
    await cluster.api('PUT', '/api/v1/tools/wroll', { image: image(), command: ['sh', '-c'], warm: 2, env: { V: '2' } });
    await waitFor(async () => {
      const cs = await warmContainers('wroll', true);
      return cs.length === 2 && cs.every((c) => c.Labels['machete.version'] === '2' && c.State === 'running' && !v1.has(c.Id));
    }, 'two v2 sandboxes and no v1');
    const r = await invoke('wroll', { args: ['echo $V'] });
    expect(r.body.stdout).toBe('2\n');
    await cluster.api('DELETE', '/api/v1/tools/wroll');
    await waitFor(async () => (await warmContainers('wroll', true)).length === 0, 'no warm sandbox left after delete');
  });

  it('removes a previous agent’s sandboxes at start (one may have served an invocation) and fills anew', async () => {
    const before = await poolFull('wsh', 2);
    await cluster.stopAgent();
    await cluster.startAgent();
    const after = await poolFull('wsh', 2, before);
    expect([...after].some((id) => before.has(id))).toBe(false);
  });

  it('runs cold, and says why, when the image has no `sleep` to idle in', async () => {
    // An image without `sleep`: the test image with the applet removed, committed by the engine.
    const c = await docker.createContainer({ Image: image(), Cmd: ['rm', '/bin/sleep'], HostConfig: { NetworkMode: 'none' } });
    await c.start();
    await c.wait();
    await c.commit({ repo: 'machete/nosleep', tag: 'test' });
    await c.remove();
    await cluster.api('PUT', '/api/v1/tools/nosleep', { image: 'machete/nosleep:test', command: ['echo'], warm: 1 });
    const slot = await waitFor(async () => (await cluster.api('GET', '/api/v1/instances?tool=nosleep')).body.find((i: any) => i.kind === 'warm' && i.reason), 'slot reason');
    expect(slot.reason).toMatch(/no runnable `sleep`/);
    const r = await invoke('nosleep', { args: ['still works'] });
    expect(r.body).toMatchObject({ status: 'succeeded', stdout: 'still works\n' });
    await cluster.api('DELETE', '/api/v1/tools/nosleep');
  });
});
