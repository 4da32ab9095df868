import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { expectLockedDown } from '../helpers/lockdown.ts';
import { cgroupFile, diskBytes, keyValues, median, peakSampler, runningInvocation, stats, timedInvoke, withHostListener } from './resourceProbes.ts';

// SECURITY-CASES 14, 17–19, 21 and 22 through the whole stack: HTTP → control plane → WebSocket →
// agent → the run's real dockerd. Every limit is proven by what the kernel and the engine do to a
// hostile tool (a fork bomb, an allocation past the limit, busy threads, a flood, a disk filler), and
// by the rest of the system still answering meanwhile. Case 23 (1,000 concurrent invokes on the real
// engine, 429 with Retry-After, no container left) is test/e2e/invokeCleanup.test.ts.
const MIB = 1024 * 1024;
const image = () => inject('testImage');
let cluster: TestCluster;
let hostId: string;
const created: string[] = [];

async function tool(name: string, spec: Record<string, unknown>): Promise<void> {
  const r = await cluster.api('PUT', `/api/v1/tools/${name}`, { image: image(), ...spec });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  created.push(name);
}

const toolContainers = (name: string) => cluster.docker.listContainers({ all: true, filters: { label: [`machete.tool=${name}`, `machete.host=${hostId}`] } });

const invocation = async (id: string) => (await cluster.api('GET', `/api/v1/invocations/${id}`)).body;
const finished = (id: string, timeoutMs = 30_000) => waitFor(async () => ((await invocation(id)).status !== 'running' ? invocation(id) : null), `invocation ${id} finished`, timeoutMs, 200);

beforeAll(async () => {
  // The per-token request rate is off: the tests below poll the API often.
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket'), env: { MACHETE_RATE_LIMIT_PER_SECOND: '0' } });
  await cluster.startServer();
  hostId = (await cluster.startAgent()).hostId;
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.status === 'ready', 'host ready');
  await tool('echo', { command: ['echo', 'ok'], timeoutSeconds: 30 });
  created.length = 0; // shared by every test: kept until afterAll
});

afterEach(async () => {
  for (const name of created.splice(0)) {
    expect((await cluster.api('DELETE', `/api/v1/tools/${name}`)).status).toBe(204);
    await waitFor(async () => (await toolContainers(name)).length === 0, `containers of ${name} removed`, 30_000, 200);
  }
}, 60_000);
afterAll(() => cluster?.close());

describe('what the engine enforces (case 14)', () => {
  it('runs an invocation container locked down, with its own limits and no engine log', async () => {
    const limits = { memoryMb: 32, cpus: 0.25, pids: 16 };
    await tool('inspect-inv', { command: ['sleep', '30'], resources: limits, timeoutSeconds: 30 });
    const { id } = (await cluster.api('POST', '/api/v1/tools/inspect-inv/invoke', { wait: false })).body;
    const c = await runningInvocation(cluster, 'inspect-inv');
    const info = await cluster.docker.getContainer(c.Id).inspect();
    expect(info.Config.Labels).toMatchObject({ 'machete.kind': 'invocation', 'machete.instance': id });
    expectLockedDown(info, limits);
    expect(info.HostConfig.NetworkMode).toBe('none');
    // An invocation's output is read from the attach stream (capped); the engine keeps no log file of it.
    expect(info.HostConfig.LogConfig).toMatchObject({ Type: 'none' });
    expect((await cluster.api('DELETE', `/api/v1/invocations/${id}`)).body.status).toBe('cancelled');
  }, 60_000);

  it('puts a network: "isolated" replica on an internal network of its own, with rotated logs', async () => {
    await tool('iso', { command: ['sleep', '3600'], network: 'isolated' });
    await cluster.api('PUT', '/api/v1/tools/iso/deployment', { replicas: 1 });
    const inst = await waitFor(async () => {
      const [i] = (await cluster.api('GET', '/api/v1/instances?tool=iso')).body;
      return i?.state === 'running' || i?.reason ? i : null;
    }, 'isolated replica running or refused');
    expect(inst, JSON.stringify(inst)).toMatchObject({ state: 'running', reason: null });
    const info = await cluster.docker.getContainer(inst.containerId).inspect();
    expectLockedDown(info, { memoryMb: 256, cpus: 0.5, pids: 128 });
    expect(info.HostConfig.LogConfig).toMatchObject({ Type: 'json-file', Config: { 'max-size': expect.any(String), 'max-file': expect.any(String) } });
    const networks = Object.keys(info.NetworkSettings.Networks);
    expect(networks).toEqual([info.HostConfig.NetworkMode]);
    const net = await cluster.docker.getNetwork(networks[0]!).inspect();
    // Internal, and no address on the host side of the bridge; only the tool's own containers on it.
    expect(net).toMatchObject({ Internal: true, Options: { 'com.docker.network.bridge.inhibit_ipv4': 'true' } });
    expect(net.Driver).toBe('bridge');
    expect(Object.keys(net.Containers ?? {})).toEqual([info.Id]);

    // An isolated invocation (the runner's own create path) gets a network of its own too, and nothing
    // answers at its default gateway: a service of the host, listening on every address, is out of reach.
    const probe = [
      'while read -r i d g r; do [ "$d" = 00000000 ] && h=$g; done < /proc/net/route',
      'gw=$((0x${h:6:2})).$((0x${h:4:2})).$((0x${h:2:2})).$((0x${h:0:2}))',
      'echo "gw=$gw"; nc -w 2 "$gw" "$0" </dev/null; echo "nc=$?"',
    ].join('\n');
    await tool('iso-inv', { command: ['sh', '-c', probe], network: 'isolated', timeoutSeconds: 20 });
    await withHostListener(async (port, accepted) => {
      const r = (await cluster.api('POST', '/api/v1/tools/iso-inv/invoke', { args: [String(port)] })).body;
      expect(r.status, JSON.stringify(r)).toBe('succeeded');
      const own = await cluster.docker.getNetwork('machete-net-iso-inv').inspect();
      expect(own).toMatchObject({ Internal: true, Options: { 'com.docker.network.bridge.inhibit_ipv4': 'true' } });
      expect(r.stdout).toContain(`gw=${own.IPAM?.Config?.[0]?.Gateway}\n`);
      expect(r.stdout).toMatch(/^nc=[1-9]/m);
      expect(accepted()).toBe(0);
    });
  }, 60_000);

  it('refuses to start an isolated replica on a same-named network with an address on the host', async () => {
    // Someone made the network first, internal but with an address on the host: the agent must not join it.
    await cluster.docker.createNetwork({ Name: 'machete-net-iso-open', Driver: 'bridge', Internal: true });
    try {
      await tool('iso-open', { command: ['sleep', '3600'], network: 'isolated' });
      await cluster.api('PUT', '/api/v1/tools/iso-open/deployment', { replicas: 1 });
      const inst = await waitFor(async () => {
        const [i] = (await cluster.api('GET', '/api/v1/instances?tool=iso-open')).body;
        return i?.reason ? i : null;
      }, 'isolated replica refused');
      expect(inst.state).toBe('failed');
      expect(inst.reason).toMatch(/not internal without a host address/);
      expect(await toolContainers('iso-open')).toEqual([]);
    } finally {
      await cluster.api('DELETE', '/api/v1/tools/iso-open');
      created.splice(created.indexOf('iso-open'), 1);
      await cluster.docker.getNetwork('machete-net-iso-open').remove();
    }
  }, 60_000);

  it('removes an isolated tool\'s network once the tool is deleted, and not while a container is on it', async () => {
    await tool('iso-del', { command: ['sleep', '3600'], network: 'isolated', warm: 1 });
    await cluster.api('PUT', '/api/v1/tools/iso-del/deployment', { replicas: 2 });
    await waitFor(async () => (await toolContainers('iso-del')).filter((c) => c.State === 'running').length === 3, '2 replicas and a warm sandbox running', 30_000, 200).catch(async (err: Error) => {
      const states = (await toolContainers('iso-del')).map((c) => `${c.Labels['machete.kind']}:${c.State}:${c.Status}`);
      const insts = (await cluster.api('GET', '/api/v1/instances?tool=iso-del')).body.map((i: { kind: string; state: string; reason: string | null }) => `${i.kind}:${i.state}:${i.reason}`);
      throw new Error(`${err.message}; containers ${JSON.stringify(states)}; instances ${JSON.stringify(insts)}`);
    });
    const net = await cluster.docker.getNetwork('machete-net-iso-del').inspect();
    expect(net.Labels).toEqual({ 'machete.managed': 'true', 'machete.host': hostId, 'machete.tool': 'iso-del' });
    // Scaled down to nothing but the warm sandbox: still in use, still there.
    await cluster.api('PUT', '/api/v1/tools/iso-del/deployment', { replicas: 0 });
    await waitFor(async () => (await toolContainers('iso-del')).length === 1, 'only the warm sandbox left', 30_000, 200);
    expect((await cluster.docker.getNetwork('machete-net-iso-del').inspect()).Id).toBe(net.Id);
    expect((await cluster.api('DELETE', '/api/v1/tools/iso-del')).status).toBe(204);
    created.splice(created.indexOf('iso-del'), 1);
    const gone = async () => (await cluster.docker.listNetworks({ filters: { name: ['machete-net-iso-del'] } })).length === 0;
    await waitFor(gone, 'the network of the deleted tool removed', 30_000, 200);
    expect(await toolContainers('iso-del')).toEqual([]);
  }, 60_000);

  it('locks down warm sandboxes like any container, on none and on an isolated network', async () => {
    const limits = { memoryMb: 48, cpus: 0.25, pids: 24 };
    await tool('warm-ls', { command: ['sh', '-c'], warm: 1, resources: limits, timeoutSeconds: 20 });
    await tool('warm-iso', { command: ['sh', '-c'], warm: 1, network: 'isolated', timeoutSeconds: 20 });
    for (const [name, expected, network] of [['warm-ls', limits, 'none'], ['warm-iso', { memoryMb: 256, cpus: 0.5, pids: 128 }, 'machete-net-warm-iso']] as const) {
      const [c] = await waitFor(async () => {
        const cs = await cluster.docker.listContainers({ filters: { label: ['machete.kind=warm', `machete.tool=${name}`, `machete.host=${hostId}`] } });
        return cs.length > 0 ? cs : null;
      }, `a started warm sandbox of ${name}`, 30_000, 200);
      const info = await cluster.docker.getContainer(c!.Id).inspect();
      expect(info.Config.Labels).toMatchObject({ 'machete.kind': 'warm', 'machete.tool': name });
      expect(info.State.Running).toBe(true);
      expectLockedDown(info, expected);
      expect(info.HostConfig.NetworkMode).toBe(network);
      expect(Object.keys(info.NetworkSettings.Networks)).toEqual([network]);
      // Exec output never reaches the log driver; the idle process prints nothing: no engine log at all.
      expect(info.HostConfig.LogConfig).toMatchObject({ Type: 'none' });
      // A run in it (not a cold fallback: its hostname is the sandbox's) is held by the same limits.
      await waitFor(async () => (await cluster.api('GET', `/api/v1/instances?tool=${name}`)).body.some((i: { kind: string; state: string }) => i.kind === 'warm' && i.state === 'running'), `${name} slot reported running`);
      const probe = 'hostname; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; id -u';
      const r = (await cluster.api('POST', `/api/v1/tools/${name}/invoke`, { args: [probe] })).body;
      expect(r, JSON.stringify(r)).toMatchObject({ status: 'succeeded', stdout: `${c!.Id.slice(0, 12)}\n${expected.pids}\n65534\n` });
    }
  }, 90_000);
});

describe('resource limits on a real engine (cases 17–22)', () => {
  it('holds a fork bomb at its pids limit while the API, the agent and another tool keep answering (case 17)', async () => {
    // The naive bomb: its shell dies at the first fork the limit refuses, so the tool fails.
    await tool('bomb-naive', { command: ['sh', '-c', 'while :; do sleep 1000 & done'], resources: { pids: 64 }, timeoutSeconds: 15 });
    const naive = (await cluster.api('POST', '/api/v1/tools/bomb-naive/invoke', {})).body;
    expect(naive).toMatchObject({ status: 'failed', exitCode: 2 });
    expect(naive.stderr).toMatch(/can't fork/);

    // A bomb that keeps respawning its forker holds the container at the limit until the timeout kills it.
    const bomb = `while :; do sh -c 'while :; do sleep 1000 & done' 2>/dev/null; done`;
    await tool('bomb', { command: ['sh', '-c', bomb], resources: { pids: 64 }, timeoutSeconds: 12 });
    const { id } = (await cluster.api('POST', '/api/v1/tools/bomb/invoke', { wait: false })).body;
    const c = await runningInvocation(cluster, 'bomb');
    const pid = (await cluster.docker.getContainer(c.Id).inspect()).State.Pid;
    const atLimit = await waitFor(async () => {
      const s = await stats(cluster.docker, c.Id);
      const refused = keyValues(cgroupFile(pid, 'pids', 'pids.events')).max ?? 0;
      return (s.pids_stats?.current ?? 0) >= 60 && refused > 0 ? { ...s.pids_stats, refused } : null;
    }, 'the bomb at its pids limit', 10_000, 200);
    expect(atLimit.limit).toBe(64);
    expect(atLimit.current).toBeLessThanOrEqual(64);

    // During the bomb: health, the host's heartbeat, and another tool on the same host.
    const seen = (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.lastSeenAt as string;
    expect((await fetch(`${cluster.url}/api/health`)).status).toBe(200);
    const other = await timedInvoke(cluster, 'echo');
    expect(other.body).toMatchObject({ status: 'succeeded', stdout: 'ok\n' });
    const host = await waitFor(async () => {
      const h = (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body;
      return h.status === 'ready' && Date.parse(h.lastSeenAt) > Date.parse(seen) ? h : null;
    }, 'a fresh heartbeat from the agent', 10_000, 200);
    expect(host.status).toBe('ready');
    expect((await invocation(id)).status).toBe('running'); // all of that happened while the bomb ran

    expect(await finished(id)).toMatchObject({ status: 'timeout', exitCode: null });
    await waitFor(async () => (await toolContainers('bomb')).length === 0, 'bomb container removed');
  }, 60_000);

  it('kills a tool allocating 10x its memory and reports the OOM kill, for an invocation and for replicas (case 18)', async () => {
    // 170 MB kept in a shell variable, under a 16 MiB limit.
    const hog = { command: ['sh', '-c', 'x=$(yes | head -c 170000000); echo survived; sleep 3600'], resources: { memoryMb: 16 }, timeoutSeconds: 30 };
    await tool('oom-inv', { ...hog, command: ['sh', '-c', 'x=$(yes | head -c 170000000); echo survived'] });
    await tool('oom-once', { ...hog, restart: 'never' });
    await tool('oom-loop', hog); // restart: on-failure (the default)
    await cluster.api('PUT', '/api/v1/tools/oom-once/deployment', { replicas: 1 });
    await cluster.api('PUT', '/api/v1/tools/oom-loop/deployment', { replicas: 1 });

    const r = (await cluster.api('POST', '/api/v1/tools/oom-inv/invoke', {})).body;
    expect(r).toMatchObject({ status: 'failed', exitCode: 137 });
    expect(r.reason).toMatch(/out of memory/);
    expect(r.stdout).not.toContain('survived');

    let seen: unknown = null;
    const once = await waitFor(async () => {
      const [i] = (await cluster.api('GET', '/api/v1/instances?tool=oom-once')).body;
      seen = i ?? null;
      return i?.state === 'failed' && i.reason ? i : null;
    }, 'oom-once reported failed with a reason', 30_000, 200).catch(async (err: Error) => {
      // Say what was seen instead: the instance as last reported and the tool's containers on the engine.
      const containers = (await cluster.containers(true)).filter((c) => c.Labels['machete.tool'] === 'oom-once').map((c) => ({ state: c.State, status: c.Status }));
      throw new Error(`${err.message}; instance ${JSON.stringify(seen)}; containers ${JSON.stringify(containers)}`);
    });
    expect(once).toMatchObject({ state: 'failed', exitCode: 137 });
    expect(once.reason).toMatch(/out of memory/);
    expect((await cluster.docker.getContainer(once.containerId).inspect()).State.OOMKilled).toBe(true);

    const loop = await waitFor(async () => {
      const [i] = (await cluster.api('GET', '/api/v1/instances?tool=oom-loop')).body;
      return i?.restarts >= 1 && /out of memory/.test(i.reason ?? '') ? i : null;
    }, 'oom-loop restarted and reported with the OOM reason', 30_000, 200);
    expect(loop.state).toBe('failed');
  }, 60_000);

  it('throttles 64 busy threads at 0.5 CPU and keeps another tool answering in bounded time (case 19)', async () => {
    const spin = 'i=0; while [ $i -lt 64 ]; do (while :; do :; done) & i=$((i+1)); done; wait';
    await tool('cpu-hog', { command: ['sh', '-c', spin], resources: { cpus: 0.5 }, timeoutSeconds: 45 });
    await timedInvoke(cluster, 'echo'); // warm-up
    const baseline = median(await sequential(5, async () => (await timedInvoke(cluster, 'echo')).ms));

    const { id } = (await cluster.api('POST', '/api/v1/tools/cpu-hog/invoke', { wait: false })).body;
    const c = await runningInvocation(cluster, 'cpu-hog');
    const pid = (await cluster.docker.getContainer(c.Id).inspect()).State.Pid;
    await waitFor(async () => (await stats(cluster.docker, c.Id)).cpu_stats?.throttling_data?.throttled_periods, 'throttling', 10_000, 200);
    // CPU used over 2 s of wall clock: the quota, not the 2 cores 64 threads would take.
    const u0 = (await stats(cluster.docker, c.Id)).cpu_stats!.cpu_usage!.total_usage!;
    const t0 = performance.now();
    await new Promise((res) => setTimeout(res, 2000));
    const cores = ((await stats(cluster.docker, c.Id)).cpu_stats!.cpu_usage!.total_usage! - u0) / ((performance.now() - t0) * 1e6);
    const cpuStat = keyValues(cgroupFile(pid, 'cpu', 'cpu.stat'));

    const during = await sequential(5, async () => {
      const r = await timedInvoke(cluster, 'echo');
      expect(r.body.status).toBe('succeeded');
      return r.ms;
    });
    expect((await invocation(id)).status).toBe('running'); // the hog was still spinning throughout
    console.info(`case 19: hog used ${cores.toFixed(2)} cores; cpu.stat ${JSON.stringify(cpuStat)}; echo p50 ${baseline.toFixed(0)} ms before, ${median(during).toFixed(0)} ms during (${during.map((x) => x.toFixed(0)).join(', ')})`);
    expect(cores).toBeLessThan(0.5 * 1.25);
    expect((cpuStat.nr_throttled ?? 0) + (cpuStat.throttled_usec ?? 0)).toBeGreaterThan(0);
    // Bounded: under 3x the baseline, or an absolute ceiling so a noisy 2-core machine does not flake.
    expect(median(during)).toBeLessThan(Math.max(3 * baseline, 2000));
    expect((await cluster.api('DELETE', `/api/v1/invocations/${id}`)).body.status).toBe('cancelled');
  }, 60_000);

  it('truncates a 1 GB stdout flood at the cap through the control plane, with bounded memory (case 21)', async () => {
    // 1 GB of "a" (not NUL bytes, which JSON would escape 6-fold and the runner would shrink to fit a frame).
    await tool('flood', { command: ['sh', '-c', "head -c 1000000000 /dev/zero | tr '\\0' a"], resources: { cpus: 2 }, timeoutSeconds: 55 });
    // The control plane and the agent both run in this process: its RSS bounds both.
    const rss0 = process.memoryUsage().rss;
    const sampler = peakSampler(() => process.memoryUsage().rss, 50);
    const t0 = performance.now();
    const r = await cluster.api('POST', '/api/v1/tools/flood/invoke', {}).finally(() => undefined);
    const peak = await sampler.stop();
    console.info(`case 21: 1 GB flood answered in ${Math.round(performance.now() - t0)} ms, RSS growth peak ${((peak - rss0) / MIB).toFixed(1)} MiB`);
    expect(r.body).toMatchObject({ status: 'succeeded', exitCode: 0, truncated: true });
    expect(r.body.stdout.length).toBe(MIB);
    expect(/^a+$/.test(r.body.stdout)).toBe(true);
    expect(peak - rss0).toBeLessThan(200 * MIB);
    const stored = await invocation(r.body.id);
    expect(stored).toMatchObject({ status: 'succeeded', truncated: true });
  }, 90_000);

  it('refuses writes to the root filesystem, caps /tmp, and leaves the engine data root as it was (case 22)', async () => {
    const script = [
      'dd if=/dev/zero of=/big bs=1M count=1024 2>&1; echo "root=$?"',
      'dd if=/dev/zero of=/tmp/big bs=1M count=1024 2>&1; echo "tmp=$?"',
      'echo "tmpsize=$(wc -c < /tmp/big)"',
      'sleep 2', // the writable layer, had there been one, is still there to be measured
    ].join('; ');
    await tool('filler', { command: ['sh', '-c', script], timeoutSeconds: 30 });
    const root = ((await cluster.docker.info()) as { DockerRootDir: string }).DockerRootDir;
    const before = await diskBytes(root);
    const disk = peakSampler(() => diskBytes(root), 250);
    const layer = peakSampler(async () => {
      const [c] = await cluster.docker.listContainers({ all: true, size: true, filters: { label: ['machete.tool=filler'] } } as Docker.ContainerListOptions);
      return (c as (Docker.ContainerInfo & { SizeRw?: number }) | undefined)?.SizeRw ?? 0;
    }, 250);
    const r = (await cluster.api('POST', '/api/v1/tools/filler/invoke', {})).body;
    const [peakDisk, peakLayer] = [await disk.stop(), await layer.stop()];
    console.info(`case 22: data root ${(before / MIB).toFixed(1)} MiB, peak growth ${((peakDisk - before) / MIB).toFixed(2)} MiB, writable layer peak ${peakLayer} B`);
    expect(r.status).toBe('succeeded');
    expect(r.stdout).toMatch(/Read-only file system/);
    expect(r.stdout).toMatch(/^root=[1-9]/m);
    expect(r.stdout).toMatch(/No space left on device/);
    expect(r.stdout).toMatch(/^tmp=[1-9]/m);
    expect(Number(/^tmpsize=(\d+)/m.exec(r.stdout)?.[1])).toBeLessThanOrEqual(64 * MIB);
    expect(peakLayer).toBeLessThan(MIB);
    expect(peakDisk - before).toBeLessThan(8 * MIB);
  }, 60_000);
});

async function sequential<T>(n: number, fn: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}
