/**
 * bench/invoke: latency and throughput of cold invocations through MACHETE, against raw
 * dockerode create + start + wait + logs + remove of the same container, in the same run.
 *
 *   npx tsx bench/invoke.ts            (COUNT=40 per series)
 *
 * Starts its own isolated dockerd and PostgreSQL. Prints p50/p99 and invocations per second
 * at concurrency 1 and 8 for both paths, and the ratio of the p50s.
 */
import Docker from 'dockerode';
import { buildCreatePayload } from '../agent/src/docker/payload.ts';
import { ToolSpecSchema, type DesiredInstance } from '../protocol/src/index.ts';
import { startDockerd } from '../test/harness/dockerd.ts';
import { ensureTestImage } from '../test/harness/image.ts';
import { startPostgres } from '../test/harness/postgres.ts';
import { TestCluster, waitFor } from '../test/helpers/cluster.ts';

const COUNT = Number(process.env.COUNT ?? 40);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function series(concurrency: number, one: () => Promise<void>): Promise<{ lat: number[]; perSecond: number }> {
  const lat: number[] = [];
  let left = COUNT;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) {
        const t = performance.now();
        await one();
        lat.push(performance.now() - t);
      }
    }),
  );
  return { lat, perSecond: (COUNT / (performance.now() - t0)) * 1000 };
}

async function main() {
  const engine = await startDockerd({ name: 'bench-invoke' });
  const pg = await startPostgres();
  const cluster = new TestCluster({ dockerSocket: engine.socketPath, databaseUrl: pg.url, env: { MACHETE_INVOKE_MAX_PER_TOOL: '64', MACHETE_INVOKE_MAX_PER_HOST: '64' } });
  try {
    const image = await ensureTestImage(engine.socketPath);
    const docker = new Docker({ socketPath: engine.socketPath, timeout: 60_000 });
    await cluster.startServer();
    await cluster.startAgent();
    await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
    const specInput = { image, command: ['echo', 'hello'] };
    await cluster.api('PUT', '/api/v1/tools/bench-echo', specInput);
    const spec = ToolSpecSchema.parse(specInput);
    let n = 0;

    const raw = async () => {
      const inst: DesiredInstance = { id: `r${n++}x${process.pid}`, tool: 'bench-echo', version: 1, kind: 'invocation', revision: 0, desired: 'running', spec };
      const p = buildCreatePayload(inst, { hostId: 'bench-raw', allowedMounts: [], engineEndpoint: '/none.sock' });
      // The baseline reads output back with `logs`, which needs a readable log driver
      // (MACHETE's invocations attach instead and run with logging off).
      const hostConfig = { ...(p.body.HostConfig as object), LogConfig: { Type: 'json-file', Config: {} } };
      const c = await docker.createContainer({ name: p.name, ...p.body, HostConfig: hostConfig, OpenStdin: false, StdinOnce: false, AttachStdin: false } as Docker.ContainerCreateOptions);
      await c.start();
      const w = await c.wait();
      const out = await c.logs({ stdout: true, stderr: true, follow: false });
      if (w.StatusCode !== 0 || !out.toString().includes('hello')) throw new Error('raw run failed');
      await c.remove({ force: true });
    };
    const viaMachete = async () => {
      const r = await cluster.api('POST', '/api/v1/tools/bench-echo/invoke', {});
      if (r.status !== 200 || r.body.status !== 'succeeded' || r.body.stdout.trim() !== 'hello') throw new Error(`invoke failed: ${JSON.stringify(r.body).slice(0, 300)}`);
    };
    await raw();
    await viaMachete(); // warm-up

    const lines: string[] = [];
    for (const c of [1, 8]) {
      const rawS = await series(c, raw);
      const macS = await series(c, viaMachete);
      const row = (name: string, s: { lat: number[]; perSecond: number }) =>
        `  ${name.padEnd(22)} p50 ${pct(s.lat, 50).toFixed(0).padStart(5)} ms  p99 ${pct(s.lat, 99).toFixed(0).padStart(5)} ms  ${s.perSecond.toFixed(2)}/s`;
      lines.push(`cold, concurrency ${c}:`, row('raw dockerode', rawS), row('MACHETE invoke', macS));
      const r50 = pct(rawS.lat, 50), m50 = pct(macS.lat, 50);
      lines.push(`  p50 ratio ${(m50 / r50).toFixed(3)}; budget 1.15 × raw + 25 ms = ${(1.15 * r50 + 25).toFixed(0)} ms → ${m50 <= 1.15 * r50 + 25 ? 'within' : 'OVER'}`);
    }
    const left = await docker.listContainers({ all: true, filters: { label: ['machete.kind=invocation'] } });
    lines.push(`invocation containers left on the engine: ${left.length}`);
    console.log(lines.join('\n'));
  } finally {
    await cluster.close();
    await engine.stop();
    await pg.stop();
  }
}

await main();
