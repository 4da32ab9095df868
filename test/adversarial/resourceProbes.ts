import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type Docker from 'dockerode';
import { waitFor, type TestCluster } from '../helpers/cluster.ts';

// Read-only probes of what the kernel and the engine say about a running container, for the
// resource cases of SECURITY-CASES (17–22): the limits are proven by their effects, not by the spec.

/** The engine's one-shot stats of a container (pids_stats, cpu_stats.throttling_data, memory_stats). */
export interface OneShotStats {
  pids_stats?: { current?: number; limit?: number };
  cpu_stats?: { cpu_usage?: { total_usage?: number }; throttling_data?: { periods?: number; throttled_periods?: number; throttled_time?: number } };
}

export async function stats(docker: Docker, id: string): Promise<OneShotStats> {
  // one-shot: a single sample instead of waiting for a second one (the engine's default for stream=false).
  const c = docker.getContainer(id);
  const statsOf = c.stats.bind(c) as unknown as (o: Record<string, unknown>) => Promise<OneShotStats>;
  return statsOf({ stream: false, 'one-shot': true });
}

/**
 * A file of the container's cgroup, found through /proc/<pid>/cgroup of its init process (so it works
 * whatever the cgroup driver or version). Null when the controller or file is not there.
 */
export function cgroupFile(pid: number, controller: string, file: string): string | null {
  let lines: string[];
  try {
    lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  } catch {
    return null;
  }
  for (const line of lines) {
    const [, controllers = '', rel = ''] = line.split(':');
    const dirs = controllers === '' ? [`/sys/fs/cgroup${rel}`] : controllers.split(',').includes(controller) ? [`/sys/fs/cgroup/${controllers}${rel}`, `/sys/fs/cgroup/${controller}${rel}`] : [];
    for (const dir of dirs) {
      try {
        return readFileSync(`${dir}/${file}`, 'utf8');
      } catch {
        /* try the next location */
      }
    }
  }
  return null;
}

/** `key value` lines (cpu.stat, pids.events) as numbers. */
export function keyValues(text: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Bytes used under `dir` on its own filesystem (`du -sbx`). */
export function diskBytes(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('du', ['-sbx', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    // du may complain about files that vanish while it walks (a container being removed): the total still counts.
    p.on('close', () => {
      const n = Number(out.split(/\s/)[0]);
      if (Number.isFinite(n) && out) resolve(n);
      else reject(new Error(`du ${dir}: no total`));
    });
    p.on('error', reject);
  });
}

/** Samples `fn` every `everyMs` until stopped; returns the largest value seen. */
export function peakSampler(fn: () => number | Promise<number>, everyMs: number): { stop(): Promise<number> } {
  let peak = -Infinity;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await fn());
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, await fn());
    },
  };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Wall-clock milliseconds of an invocation answered with wait: true, and its body. */
export async function timedInvoke(cluster: TestCluster, tool: string, body: Record<string, unknown> = {}): Promise<{ ms: number; body: any }> {
  const t0 = performance.now();
  const r = await cluster.api('POST', `/api/v1/tools/${tool}/invoke`, body);
  return { ms: performance.now() - t0, body: r.body };
}

/** The running container of `tool`'s invocation (kind=invocation) on the cluster's host. */
export function runningInvocation(cluster: TestCluster, tool: string): Promise<Docker.ContainerInfo> {
  return waitFor(async () => {
    const list = await cluster.docker.listContainers({ filters: { label: [`machete.tool=${tool}`, 'machete.kind=invocation', `machete.host=${cluster.agent!.hostId}`] } });
    return list.find((c) => c.State === 'running') ?? null;
  }, `${tool} invocation running`);
}

/**
 * A TCP listener on every address of this host for the length of `fn`, which gets its port and the
 * count of connections it accepted. What a tool container can reach of the host, it would reach here.
 */
export async function withHostListener(fn: (port: number, accepted: () => number) => Promise<void>): Promise<void> {
  let count = 0;
  const server = net.createServer((s) => {
    count++;
    s.destroy();
  });
  await new Promise<void>((resolve, reject) => server.listen(0, '0.0.0.0', resolve).once('error', reject));
  try {
    await fn((server.address() as net.AddressInfo).port, () => count);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
