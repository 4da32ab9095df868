import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import { createDockerodePort } from './dockerode.ts';
import { ensureToolNetwork } from './network.ts';
import { removeToolNetworkIfUnused, sweepToolNetworks } from './networkSweep.ts';
import { buildCreatePayload } from './payload.ts';
import type { DockerPort } from './port.ts';

// A `network: "isolated"` tool's network goes once nothing of the tool uses it, and never under a
// create that is about to use it (networkSweep.ts). On the run's real dockerd.
const socketPath = inject('dockerSocket');
const image = inject('testImage');
const hostId = `t-${randomUUID().slice(0, 12)}`;
const docker = new Docker({ socketPath });
const deadline = () => AbortSignal.timeout(20_000);
let port: DockerPort;
let seq = 0;

const uniqueTool = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;
const netName = (tool: string) => `machete-net-${tool}`;

function isolated(tool: string, command = ['sleep', '300']) {
  const spec = ToolSpecSchema.parse({ image, command, network: 'isolated', resources: { memoryMb: 32, cpus: 0.25, pids: 16 } });
  return buildCreatePayload({ id: `i-${++seq}`, tool, version: 1, kind: 'replica', revision: 1, desired: 'running', spec }, { hostId, allowedMounts: [], engineEndpoint: socketPath });
}

async function networkExists(name: string): Promise<boolean> {
  try {
    await docker.getNetwork(name).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

beforeAll(() => {
  port = createDockerodePort({ socketPath });
});

afterAll(async () => {
  const mine = await docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`] } });
  await Promise.allSettled(mine.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  const nets = await docker.listNetworks({ filters: { label: [`machete.host=${hostId}`] } });
  await Promise.allSettled(nets.map((n) => docker.getNetwork(n.Id).remove()));
});

describe('tool networks on a real engine', () => {
  it('labels the network and removes it with the last container on it, a created-only one included', async () => {
    const tool = uniqueTool('last');
    const a = await port.create(isolated(tool));
    await port.start(a);
    const b = await port.create(isolated(tool)); // created, never started: the engine holds no endpoint for it
    const net = await docker.getNetwork(netName(tool)).inspect();
    expect(net.Labels).toEqual({ 'machete.managed': 'true', 'machete.host': hostId, 'machete.tool': tool });
    expect(net).toMatchObject({ Internal: true });

    await port.remove(a);
    expect(await networkExists(netName(tool))).toBe(true);
    // b still starts on it: removing the network under a created container would break that start.
    await port.start(b);
    expect((await docker.getContainer(b).inspect()).State.Running).toBe(true);
    await port.remove(b);
    expect(await networkExists(netName(tool))).toBe(false);
  }, 60_000);

  it('never removes a network a create is holding, and a create waits out a removal under way', async () => {
    const tool = uniqueTool('hold');
    const release = await ensureToolNetwork(docker, isolated(tool), deadline);
    // No container is on it yet, but a create is between its ensure and its container.
    expect(await removeToolNetworkIfUnused(docker, netName(tool), deadline, { hostId })).toBe(false);
    expect(await sweepToolNetworks(docker, hostId, deadline, 0)).toBe(0);
    expect(await networkExists(netName(tool))).toBe(true);
    release();
    expect(await removeToolNetworkIfUnused(docker, netName(tool), deadline, { hostId })).toBe(true);
    expect(await networkExists(netName(tool))).toBe(false);

    // Removals and creates racing, in both orders, many times: every create succeeds, every
    // container ends up on a network that exists.
    const removals: boolean[] = [];
    for (let i = 0; i < 16; i++) {
      (await ensureToolNetwork(docker, isolated(tool), deadline))(); // there, and unused
      const removal = () => removeToolNetworkIfUnused(docker, netName(tool), deadline, { hostId });
      const create = () => port.create(isolated(tool));
      // The second one starts a little later each round, so it lands at every step of the first.
      const later = <T>(f: () => Promise<T>) => new Promise<void>((r) => setTimeout(r, Math.floor(i / 2) * 3)).then(f);
      const [removed, created] = await Promise.allSettled(i % 2 === 0 ? [removal(), later(create)] : [later(removal), create()]);
      expect(removed.status, String((removed as PromiseRejectedResult).reason)).toBe('fulfilled');
      expect(created.status, String((created as PromiseRejectedResult).reason)).toBe('fulfilled');
      removals.push((removed as PromiseFulfilledResult<boolean>).value);
      const id = (created as PromiseFulfilledResult<string>).value;
      await port.start(id);
      expect(Object.keys((await docker.getContainer(id).inspect()).NetworkSettings.Networks)).toEqual([netName(tool)]);
      await port.remove(id);
      expect(await networkExists(netName(tool))).toBe(false);
    }
    console.info(`network removals that won the race: ${removals.filter(Boolean).length} of ${removals.length}`);
  }, 120_000);

  it('keeps the network of an invocation-only tool while it is used, and the sweep removes it once idle', async () => {
    const tool = uniqueTool('inv');
    const payload = { ...isolated(tool, ['true']) };
    payload.body = { ...payload.body, Labels: { ...payload.body.Labels, 'machete.kind': 'invocation' } };
    const r = await port.run({ payload, stdin: null, timeoutMs: 20_000, maxOutputBytes: 1024, signal: new AbortController().signal });
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0 });
    // Just used: the default sweep keeps it (the next call would only create it again).
    expect(await networkExists(netName(tool))).toBe(true);
    expect(await port.sweepNetworks!(hostId)).toBe(0);
    expect(await networkExists(netName(tool))).toBe(true);
    expect(await sweepToolNetworks(docker, hostId, deadline, 0)).toBe(1);
    expect(await networkExists(netName(tool))).toBe(false);
  }, 60_000);

  it('makes one network when several containers of a tool are created at once, and resolves duplicates left by another process', async () => {
    const tool = uniqueTool('many');
    const ids = await Promise.all([1, 2, 3, 4].map(() => port.create(isolated(tool))));
    const named = async () => (await docker.listNetworks({ filters: { name: [netName(tool)] } })).filter((n) => n.Name === netName(tool));
    expect(await named()).toHaveLength(1);
    for (const id of ids) await port.remove(id);
    expect(await named()).toHaveLength(0);

    // Two agents on one engine can still race to two networks of one name: the oldest is kept.
    const opts = { Name: netName(tool), Driver: 'bridge', Internal: true, Options: { 'com.docker.network.bridge.inhibit_ipv4': 'true' }, Labels: { 'machete.managed': 'true', 'machete.host': hostId, 'machete.tool': tool } };
    const first = await docker.createNetwork(opts);
    await new Promise((r) => setTimeout(r, 20));
    await docker.createNetwork(opts);
    expect(await named()).toHaveLength(2);
    const id = await port.create(isolated(tool));
    expect((await named()).map((n) => n.Id)).toEqual([first.id]);
    await port.start(id);
    expect(Object.keys((await docker.getContainer(id).inspect()).NetworkSettings.Networks)).toEqual([netName(tool)]);
    await port.remove(id);
    expect(await named()).toHaveLength(0);
  }, 60_000);

  it("sweeps only this host's unused MACHETE networks", async () => {
    const kept = uniqueTool('kept');
    const id = await port.create(isolated(kept)); // in use (created)
    const other = `machete-net-${uniqueTool('other')}`;
    const byHand = `machete-net-${uniqueTool('hand')}`;
    await docker.createNetwork({ Name: other, Internal: true, Labels: { 'machete.managed': 'true', 'machete.host': 'another-host' } });
    await docker.createNetwork({ Name: byHand, Internal: true });
    const unused = uniqueTool('unused');
    (await ensureToolNetwork(docker, isolated(unused), deadline))();
    try {
      expect(await sweepToolNetworks(docker, hostId, deadline, 0)).toBe(1);
      expect(await networkExists(netName(unused))).toBe(false);
      expect(await networkExists(netName(kept))).toBe(true);
      expect(await networkExists(other)).toBe(true);
      expect(await networkExists(byHand)).toBe(true);
      // Not ours even when asked for by name: another host's, and one made by hand.
      expect(await removeToolNetworkIfUnused(docker, other, deadline, { hostId })).toBe(false);
      expect(await removeToolNetworkIfUnused(docker, byHand, deadline, { hostId })).toBe(false);
    } finally {
      await port.remove(id);
      await docker.getNetwork(other).remove();
      await docker.getNetwork(byHand).remove();
    }
    expect(await networkExists(netName(kept))).toBe(false);
  }, 60_000);
});
