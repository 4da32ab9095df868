/**
 * bench/converge: time for MACHETE to bring N replicas to running, against raw dockerode
 * creating and starting the same containers with concurrency 8, in the same run.
 *
 *   npx tsx bench/converge.ts [N…]        (default: 30 50; ROUNDS=5)
 *
 * Starts its own isolated dockerd and PostgreSQL (the production database; PGlite runs inside
 * the control-plane process and would compete with the agent for its event loop); prints one
 * line per round and a summary with medians and ratios. MACHETE's time runs from the
 * PUT of the deployment until its API reports N replicas running (polled every 50 ms).
 */
import Docker from 'dockerode';
import { buildCreatePayload } from '../agent/src/docker/payload.ts';
import { ToolSpecSchema, type DesiredInstance } from '../protocol/src/index.ts';
import { startDockerd } from '../test/harness/dockerd.ts';
import { ensureTestImage } from '../test/harness/image.ts';
import { startPostgres } from '../test/harness/postgres.ts';
import { TestCluster, waitFor } from '../test/helpers/cluster.ts';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const Ns = sizes.length ? sizes : [30, 50];
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONCURRENCY = 8;

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function removeAll(docker: Docker, label: string): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [label] } });
  await pool(list, CONCURRENCY, async (c) => docker.getContainer(c.Id).remove({ force: true }));
}

/** Baseline: the same create payloads MACHETE builds, created and started directly. */
async function raw(docker: Docker, image: string, n: number): Promise<number> {
  const spec = ToolSpecSchema.parse({ image, command: ['sleep', '3600'] });
  const payloads = Array.from({ length: n }, (_, i) => {
    const inst: DesiredInstance = { id: `raw${i}x${Date.now()}`, tool: 'bench-raw', version: 1, kind: 'replica', revision: 1, desired: 'running', spec };
    return buildCreatePayload(inst, { hostId: 'bench-raw-host', allowedMounts: [], engineEndpoint: '/nonexistent.sock' });
  });
  const t0 = performance.now();
  await pool(payloads, CONCURRENCY, async (p) => {
    const c = await docker.createContainer({ name: p.name, ...p.body } as Docker.ContainerCreateOptions);
    await c.start();
  });
  const ms = performance.now() - t0;
  await removeAll(docker, 'machete.host=bench-raw-host');
  return ms;
}

/** MACHETE: from PUT deployment to the API reporting N replicas running. */
async function machete(cluster: TestCluster, n: number): Promise<number> {
  const t0 = performance.now();
  const put = await cluster.api('PUT', '/api/v1/tools/bench/deployment', { replicas: n });
  if (put.status !== 200) throw new Error(`scale failed: ${JSON.stringify(put.body)}`);
  await waitFor(async () => (await cluster.api('GET', '/api/v1/tools/bench/deployment')).body.running === n, `${n} running`, 120_000, 50);
  const ms = performance.now() - t0;
  await cluster.api('PUT', '/api/v1/tools/bench/deployment', { replicas: 0 });
  await waitFor(async () => (await cluster.containers(true)).length === 0, 'scaled to zero', 120_000, 50);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const engine = await startDockerd({ name: 'bench' });
  const pg = await startPostgres();
  // N replicas × 0.5 CPU exceed this machine's cores; the bench measures convergence, not capacity.
  const cluster = new TestCluster({ dockerSocket: engine.socketPath, databaseUrl: pg.url, agentEnv: { MACHETE_CAPACITY_CPUS: '512' } });
  try {
    const image = await ensureTestImage(engine.socketPath);
    const docker = new Docker({ socketPath: engine.socketPath, timeout: 60_000 });
    await cluster.startServer();
    await cluster.startAgent();
    await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
    await cluster.api('PUT', '/api/v1/tools/bench', { image, command: ['sleep', '3600'] });
    await raw(docker, image, 8); // warm-up: first containers on a fresh engine are slower
    const summary: string[] = [];
    for (const n of Ns) {
      const r: number[] = [];
      const m: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        // Alternate the order so neither side always runs on a warmer engine.
        if (i % 2 === 0) { r.push(await raw(docker, image, n)); m.push(await machete(cluster, n)); }
        else { m.push(await machete(cluster, n)); r.push(await raw(docker, image, n)); }
        console.log(`N=${n} round ${i + 1}: raw ${r.at(-1)!.toFixed(0)} ms, machete ${m.at(-1)!.toFixed(0)} ms`);
      }
      const ratio = median(m) / median(r);
      summary.push(`N=${n}: raw dockerode (concurrency ${CONCURRENCY}) median ${median(r).toFixed(0)} ms, MACHETE median ${median(m).toFixed(0)} ms, ratio ${ratio.toFixed(3)}`);
    }
    console.log('\n' + summary.join('\n'));
  } catch (err) {
    console.error('bench failed:', err);
    throw err;
  } finally {
    await cluster.close();
    await engine.stop();
    await pg.stop();
  }
}

await main();
