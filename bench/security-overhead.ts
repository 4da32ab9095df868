/**
 * bench/security-overhead: what the sandbox costs.
 *
 *   npx tsx bench/security-overhead.ts      (ROUNDS=10 N=32 CONCURRENCY=8 BATCHES=25 ITER=2000 ORDER=abab)
 *
 * (a) Policy validation per spec, in µs, pure CPU, after warm-up: the tool-spec schema of protocol/
 *     (`ToolSpecSchema`, which the API validates request bodies with), the image allowlist and the
 *     spec policy of protocol/src/policy (mounts, working directory), and
 *     the agent's own re-check in `buildCreatePayload` (the instance schema again, image allowlist,
 *     lexical mount policy, then the payload itself). Typical and hostile specs; hostile ones are
 *     timed up to their refusal, exactly as far as the real code gets. Symlink resolution of mount
 *     sources (filesystem calls) is not part of it.
 * (b) Sandboxed vs unhardened create+start on the same isolated dockerd, in the same run: the payload
 *     `buildCreatePayload` makes (CapDrop ALL, no-new-privileges, read-only rootfs + tmpfs /tmp, memory,
 *     CPU and pids limits, init, log rotation, NetworkMode none) against a plain one (same image, same
 *     command, NetworkMode none, nothing else). N containers per round at concurrency 8, like
 *     bench/converge; rounds interleaved (ABAB, or ABBA with ORDER=abba) to cancel drift; every
 *     container removed between rounds. Prints per-container create+start latency (median, p90) and
 *     round wall time per side, and the ratios hardened/unhardened. Target (issue 3): ≤ 1.05.
 */
import Docker from 'dockerode';
import { buildCreatePayload, PolicyRefusal, type PayloadContext } from '../agent/src/docker/payload.ts';
import type { CreatePayload } from '../agent/src/docker/port.ts';
import { parseAllowedMounts } from '../agent/src/policy/mounts.ts';
import { checkSpecPolicy, imageAllowed, parseImagePatterns, ToolSpecSchema, type DesiredInstance, type ToolSpec } from '../protocol/src/index.ts';
import { startDockerd } from '../test/harness/dockerd.ts';
import { ensureTestImage } from '../test/harness/image.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const N = Number(process.env.N ?? 32);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const BATCHES = Number(process.env.BATCHES ?? 25);
const ITER = Number(process.env.ITER ?? 2000);
const ORDER = process.env.ORDER === 'abba' ? 'abba' : 'abab';
const BENCH_LABEL = 'machete.bench';
const HOST_ID = 'bench-sec-host';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ── (a) policy validation ───────────────────────────────────────────────────

const allowedImages = parseImagePatterns('machete/*, registry.example.com/*');
const ctx: PayloadContext = {
  hostId: HOST_ID,
  allowedMounts: parseAllowedMounts('/srv/allow:rw,/srv/data:ro'),
  engineEndpoint: '/var/run/docker.sock',
  allowedImages,
};

const typical = {
  image: 'machete/busybox:test',
  command: ['sh', '-c', 'exec my-tool --input /in --output /out'],
  env: { LOG_LEVEL: 'info', REGION: 'eu-west-1', WORKERS: '4', FEATURE_X: 'on', TZ: 'UTC' },
  secrets: ['api-key'],
  mounts: [
    { source: '/srv/data/ref', target: '/in' },
    { source: '/srv/allow/out', target: '/out', readOnly: false },
  ],
  resources: { cpus: 0.5, memoryMb: 256, pids: 128 },
  network: 'isolated',
  placement: { labels: { role: 'worker', zone: 'a' } },
};

/** The largest spec the schema accepts within the API's 1 MiB body: every list at its maximum. */
const largest = {
  image: 'registry.example.com/team/tool:1.2.3',
  command: Array.from({ length: 256 }, (_, i) => `--arg-${i}=${'v'.repeat(200)}`),
  env: Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`VAR_${i}`, 'x'.repeat(2048)])),
  secrets: Array.from({ length: 64 }, (_, i) => `s-${i}`),
  mounts: Array.from({ length: 32 }, (_, i) => ({ source: `/srv/allow/d${i}`, target: `/m/d${i}` })),
  placement: { labels: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, `v${i}`])) },
};

const SPECS: Array<{ name: string; spec: Record<string, unknown> }> = [
  { name: 'typical: minimal', spec: { image: 'machete/busybox:test', command: ['sleep', '3600'] } },
  { name: 'typical: env+mounts+secret', spec: typical },
  { name: 'largest accepted (~600 KB)', spec: largest },
  { name: 'hostile: privileged', spec: { image: 'machete/busybox:test', privileged: true } },
  { name: 'hostile: nested CapAdd', spec: { image: 'machete/busybox:test', resources: { cpus: 1, CapAdd: ['SYS_ADMIN'] } } },
  { name: 'hostile: mount ../../etc', spec: { image: 'machete/busybox:test', mounts: [{ source: '/srv/allow/../../etc', target: '/x' }] } },
  { name: 'hostile: docker.sock', spec: { image: 'machete/busybox:test', mounts: [{ source: '/var/run/docker.sock', target: '/s' }] } },
  { name: 'hostile: NUL in path', spec: { image: 'machete/busybox:test', mounts: [{ source: '/srv/allow/a\0b', target: '/x' }] } },
  { name: 'hostile: nested targets', spec: { image: 'machete/busybox:test', mounts: [{ source: '/srv/allow', target: '/d' }, { source: '/srv/allow', target: '/d/sub' }] } },
  { name: 'hostile: __proto__ env', spec: JSON.parse('{"image":"machete/busybox:test","env":{"__proto__":{"x":"1"}}}') as Record<string, unknown> },
  { name: 'hostile: memory "1e99"', spec: { image: 'machete/busybox:test', resources: { memoryMb: '1e99' } } },
  { name: 'hostile: 256 bad env names', spec: { image: 'machete/busybox:test', env: Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`BAD NAME ${i}`, 'x'])) } },
  { name: 'hostile: image not allowed', spec: { image: 'evil.example.com/x:1' } },
];

/**
 * Mean µs per call, BATCHES times, after a warm-up; median and p90 of the batch means. A batch is
 * ITER calls, fewer for a costly spec (about 20 ms a batch) so the largest one does not take minutes.
 */
function timeIt(fn: () => void): { p50: number; p90: number; iter: number } {
  const w0 = performance.now();
  let warm = 0;
  while (warm < 200 || performance.now() - w0 < 200) {
    fn();
    warm++;
  }
  const perCallMs = (performance.now() - w0) / warm;
  const iter = Math.max(10, Math.min(ITER, Math.round(20 / perCallMs)));
  const batches: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = performance.now();
    for (let i = 0; i < iter; i++) fn();
    batches.push(((performance.now() - t0) * 1000) / iter);
  }
  return { p50: median(batches), p90: pct(batches, 90), iter };
}

/**
 * The API's check of a body: the schema, the image allowlist, then the spec policy (mounts and
 * working directory, against a fleet-wide allowlist like the agent's). Secrets existence is a DB query, not timed.
 */
function apiCheck(spec: unknown): string {
  const r = ToolSpecSchema.safeParse(spec);
  if (!r.success) return `400 ${r.error.issues[0]?.path.join('.') || '(root)'}`;
  if (!imageAllowed(r.data.image, allowedImages)) return '400 image';
  const policy = checkSpecPolicy(r.data, { allowedMounts: ctx.allowedMounts });
  return policy.ok ? 'accepted' : `400 ${policy.field}`;
}

/** The agent's re-check: what it receives is a frame the schema may or may not have vetted (forged control plane). */
function agentCheck(inst: DesiredInstance): string {
  try {
    buildCreatePayload(inst, ctx);
    return 'payload built';
  } catch (err) {
    if (err instanceof PolicyRefusal) return 'refused';
    throw err;
  }
}

function policyBench(): string[] {
  const fmt = (t: { p50: number; p90: number }) => `${t.p50.toFixed(1).padStart(8)} µs (p90 ${t.p90.toFixed(1).padStart(7)})`;
  const lines = [
    `(a) policy validation per spec (${BATCHES} batches of up to ${ITER} calls after ≥ 200 ms warm-up; median and p90 of the batch means)`,
    `  ${'spec'.padEnd(28)} ${'API: schema + image allowlist'.padEnd(49)} agent: re-check + payload`,
  ];
  for (const { name, spec } of SPECS) {
    const parsed = ToolSpecSchema.safeParse(spec);
    // The agent gets the validated spec when the control plane did its job, the raw one when it was bypassed.
    const agentSpec = (parsed.success ? parsed.data : spec) as ToolSpec;
    const inst: DesiredInstance = { id: 'inst-1', tool: 'bench', version: 1, kind: 'replica', revision: 1, desired: 'running', spec: agentSpec };
    if (agentSpec.secrets?.length) inst.secrets = agentSpec.secrets.map((n) => ({ name: n, value: 'v', version: 1 }));
    const api = timeIt(() => void apiCheck(spec));
    const agent = timeIt(() => void agentCheck(inst));
    lines.push(`  ${name.padEnd(28)} ${fmt(api)} ${apiCheck(spec).slice(0, 22).padEnd(22)} ${fmt(agent)} ${agentCheck(inst)}`);
  }
  return lines;
}

// ── (b) hardened vs unhardened create+start ─────────────────────────────────

type Side = 'hardened' | 'plain';

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function payloadsFor(side: Side, image: string, round: string, n: number): CreatePayload[] {
  const spec = ToolSpecSchema.parse({ image, command: ['sleep', '3600'] });
  return Array.from({ length: n }, (_, i) => {
    const inst: DesiredInstance = { id: `${round}x${i}`, tool: 'bench-sec', version: 1, kind: 'replica', revision: 1, desired: 'running', spec };
    const hardened = buildCreatePayload(inst, { hostId: HOST_ID, allowedMounts: [], engineEndpoint: '/nonexistent.sock' });
    if (side === 'hardened') return { ...hardened, body: { ...hardened.body, Labels: { ...hardened.body.Labels, [BENCH_LABEL]: side } } };
    // Same image, command and (no) network; none of the hardening.
    return { name: `bench-plain-${round}-${i}`, body: { Image: image, Cmd: ['sleep', '3600'], Labels: { [BENCH_LABEL]: side }, HostConfig: { NetworkMode: 'none' } } };
  });
}

async function removeAll(docker: Docker): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [BENCH_LABEL] } });
  await pool(list, CONCURRENCY, async (c) => docker.getContainer(c.Id).remove({ force: true }));
}

/** One round: N creates+starts at CONCURRENCY; per-container latency and wall time. Removal is not timed. */
async function round(docker: Docker, side: Side, image: string, id: string): Promise<{ lat: number[]; wallMs: number }> {
  const payloads = payloadsFor(side, image, id, N);
  const lat: number[] = [];
  const t0 = performance.now();
  await pool(payloads, CONCURRENCY, async (p) => {
    const t = performance.now();
    const c = await docker.createContainer({ name: p.name, ...p.body } as Docker.ContainerCreateOptions);
    await c.start();
    lat.push(performance.now() - t);
  });
  const wallMs = performance.now() - t0;
  await removeAll(docker);
  return { lat, wallMs };
}

/** Proves on the engine that the two sides differ as claimed, so the bench compares what it says. */
async function checkSides(docker: Docker, image: string): Promise<void> {
  for (const side of ['hardened', 'plain'] as const) {
    const [p] = payloadsFor(side, image, `chk${side[0]}`, 1);
    const c = await docker.createContainer({ name: p!.name, ...p!.body } as Docker.ContainerCreateOptions);
    const hc = (await c.inspect()).HostConfig;
    const hardenedNow = hc.ReadonlyRootfs === true && (hc.CapDrop ?? []).includes('ALL') && (hc.Memory ?? 0) > 0 && (hc.PidsLimit ?? 0) > 0;
    if (hardenedNow !== (side === 'hardened') || hc.NetworkMode !== 'none') throw new Error(`the ${side} payload is not what the bench claims: ${JSON.stringify(hc).slice(0, 300)}`);
  }
  await removeAll(docker);
}

async function engineBench(docker: Docker, image: string): Promise<string[]> {
  await checkSides(docker, image);
  await round(docker, 'hardened', image, 'wh');
  await round(docker, 'plain', image, 'wp'); // warm-up: first containers on a fresh engine are slower
  const res: Record<Side, { lat: number[]; walls: number[] }> = { hardened: { lat: [], walls: [] }, plain: { lat: [], walls: [] } };
  const pairRatios: number[] = [];
  console.log(`(b) create+start, N=${N} per round at concurrency ${CONCURRENCY}, ${ROUNDS} rounds per side, order ${ORDER.toUpperCase()}`);
  for (let i = 0; i < ROUNDS; i++) {
    const order: Side[] = ORDER === 'abba' && i % 2 === 1 ? ['plain', 'hardened'] : ['hardened', 'plain'];
    const wall: Partial<Record<Side, number>> = {};
    for (const side of order) {
      const r = await round(docker, side, image, `r${i}${side[0]}`);
      res[side].lat.push(...r.lat);
      res[side].walls.push(r.wallMs);
      wall[side] = r.wallMs;
    }
    pairRatios.push(wall.hardened! / wall.plain!);
    console.log(`  round ${i + 1}: hardened ${wall.hardened!.toFixed(0)} ms, plain ${wall.plain!.toFixed(0)} ms, ratio ${pairRatios.at(-1)!.toFixed(3)}`);
  }
  const line = (side: Side) => {
    const { lat, walls } = res[side];
    return `  ${side.padEnd(9)} per container p50 ${median(lat).toFixed(0).padStart(5)} ms  p90 ${pct(lat, 90).toFixed(0).padStart(5)} ms   round wall p50 ${median(walls).toFixed(0).padStart(6)} ms  p90 ${pct(walls, 90).toFixed(0).padStart(6)} ms`;
  };
  const latRatio = median(res.hardened.lat) / median(res.plain.lat);
  const wallRatio = median(res.hardened.walls) / median(res.plain.walls);
  const verdict = (r: number) => (r <= 1.05 ? 'within 1.05' : 'OVER 1.05');
  return [
    line('hardened'),
    line('plain'),
    `  ratio hardened/plain: per-container p50 ${latRatio.toFixed(3)}, p90 ${(pct(res.hardened.lat, 90) / pct(res.plain.lat, 90)).toFixed(3)}; ` +
      `round wall p50 ${wallRatio.toFixed(3)} (${verdict(wallRatio)}); median of paired round ratios ${median(pairRatios).toFixed(3)}`,
  ];
}

async function main() {
  const lines = policyBench();
  console.log(lines.join('\n') + '\n');
  const engine = await startDockerd({ name: 'bench-sec' });
  try {
    const image = await ensureTestImage(engine.socketPath);
    const docker = new Docker({ socketPath: engine.socketPath, timeout: 60_000 });
    const summary = await engineBench(docker, image);
    console.log('\n' + summary.join('\n'));
    const left = await docker.listContainers({ all: true, filters: { label: [BENCH_LABEL] } });
    console.log(`bench containers left on the engine: ${left.length}`);
  } catch (err) {
    console.error('bench failed:', err);
    throw err;
  } finally {
    await engine.stop();
  }
}

await main();
