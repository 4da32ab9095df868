import type { Command } from 'commander';
import type { Deployment, Instance } from '../client.ts';
import { intArg, type Ctx } from '../context.ts';
import { clean, CliError, printJson, sleep } from '../io.ts';

const POLL_MS = 500;
/** Restarts seen during the wait that make an instance crash-looping rather than starting. */
const CRASH_RESTARTS = 3;
/** How long the replicas must stay up, unchanged, before scale reports success: longer than the agent's 2 s relist, so a container that dies at once is seen dead first. */
const SETTLE_MS = 3_000;

interface ScaleOptions {
  timeout: number;
  failAfter: number;
  wait: boolean;
  json?: boolean;
}

export function registerScale(program: Command, ctx: Ctx): void {
  program
    .command('scale')
    .description('set the number of replicas of a tool and wait until that many run (and stay up 3s)')
    .argument('<name>', 'tool name')
    .argument('<replicas>', 'number of replicas', intArg('replicas', 0, 10_000))
    .option('--timeout <seconds>', 'give up waiting after this long', intArg('--timeout', 1, 86_400), 120)
    .option('--fail-after <seconds>', 'fail once an instance has been failing this long', intArg('--fail-after', 1, 86_400), 10)
    .option('--no-wait', 'return as soon as the server has the new replica count')
    .option('--json', 'print the final deployment as JSON')
    .action(async (name: string, replicas: number, opts: ScaleOptions) => {
      const client = ctx.client();
      const params = { name };
      let d = await client.call('PUT /tools/{name}/deployment', { params, body: { replicas } });
      if (opts.wait) d = await waitForReplicas(ctx, name, replicas, opts, () => client.call('GET /tools/{name}/deployment', { params }));
      if (opts.json) printJson(ctx.io, d);
      else if (!opts.wait) ctx.io.stdout.write(`${name}: scaled to ${replicas} (${d.running} running now)\n`);
    });
}

/** Polls the deployment until `running == N` (and nothing extra is left), a lasting failure, or the timeout. */
async function waitForReplicas(ctx: Ctx, name: string, n: number, opts: ScaleOptions, fetchDeployment: () => Promise<Deployment>): Promise<Deployment> {
  const { io } = ctx;
  const started = Date.now();
  // With --json, stdout carries only the JSON document.
  const progress = progressLine(opts.json ? io.stderr : io.stdout, started);
  const failingSince = new Map<string, number>();
  const restartsAtStart = new Map<string, number>();
  let settled = null as { sig: string; at: number } | null;
  for (;;) {
    const d = await fetchDeployment();
    const now = Date.now();
    if (d.running === n && d.instances.length === n) {
      // Done once the same containers have stayed up a moment: a crashing one can look running for one report.
      const sig = d.instances.map((i) => `${i.id}:${i.containerId}:${i.restarts}`).join(',');
      if (settled?.sig !== sig) settled = { sig, at: now };
      if (n === 0 || now - settled.at >= SETTLE_MS) {
        progress.done(`${name}: ${n}/${n} running`);
        return d;
      }
    } else settled = null;
    progress.show(`${name}: ${summary(d, n)}`);
    for (const i of d.instances) {
      if (!restartsAtStart.has(i.id)) restartsAtStart.set(i.id, i.restarts);
      if (i.state === 'failed') failingSince.set(i.id, failingSince.get(i.id) ?? now);
      else if (i.state === 'running') failingSince.delete(i.id);
    }
    const broken = d.instances.filter(
      (i) =>
        i.state !== 'running' &&
        ((failingSince.has(i.id) && now - failingSince.get(i.id)! >= opts.failAfter * 1000) || i.restarts - (restartsAtStart.get(i.id) ?? 0) >= CRASH_RESTARTS),
    );
    if (broken.length) {
      progress.done(`${name}: ${summary(d, n)}`);
      throw new CliError(`scale ${name}: ${broken.length} of ${n} replicas failing: ${reasons(broken)}`);
    }
    if (now - started >= opts.timeout * 1000) {
      progress.done(`${name}: ${summary(d, n)}`);
      const stuck = d.instances.filter((i) => i.state !== 'running' || i.runningVersion !== i.version);
      throw new CliError(`scale ${name}: timed out after ${opts.timeout}s with ${d.running}/${n} running${stuck.length ? `: ${reasons(stuck)}` : ''}`);
    }
    try {
      await sleep(POLL_MS, io.signal);
    } catch {
      progress.done(`${name}: ${summary(d, n)}`);
      throw new CliError(`interrupted: ${name} stays at ${n} replicas (${d.running} running); see machete instances --tool ${name}`);
    }
  }
}

/** "2/3 running (1 starting, 1 failed)". */
function summary(d: Deployment, n: number): string {
  const counts = new Map<string, number>();
  for (const i of d.instances) if (i.state !== 'running') counts.set(i.state, (counts.get(i.state) ?? 0) + 1);
  const extra = d.instances.length > n ? d.instances.length - n : 0;
  const rest = [...counts].map(([s, c]) => `${c} ${s}`);
  if (extra) rest.push(`${extra} to remove`);
  return `${d.running}/${n} running${rest.length ? ` (${rest.join(', ')})` : ''}`;
}

/** "i1 on h1: restarting in 2s (exit code 3, 2 restarts); i2: pending" — at most five, the rest counted. */
function reasons(list: Instance[]): string {
  const shown = list.slice(0, 5).map((i) => {
    const facts = [i.exitCode !== null && i.state !== 'running' ? `exit code ${i.exitCode}` : '', i.restarts ? `${i.restarts} restarts` : ''].filter(Boolean);
    return `${i.id}${i.hostId ? ` on ${i.hostId}` : ''}: ${i.reason ?? i.state}${facts.length ? ` (${facts.join(', ')})` : ''}`;
  });
  if (list.length > 5) shown.push(`and ${list.length - 5} more`);
  return clean(shown.join('; '));
}

/** On a terminal one line rewritten in place (with the elapsed time); elsewhere a line each time the status changes. */
function progressLine(out: { write(s: string): unknown; isTTY?: boolean }, started: number) {
  let last = '';
  return {
    show(line: string) {
      if (out.isTTY) out.write(`\r\x1b[2K${line} ${Math.floor((Date.now() - started) / 1000)}s`);
      else if (line !== last) out.write(`${line}\n`);
      last = line;
    },
    done(line: string) {
      if (out.isTTY) out.write(`\r\x1b[2K${line}\n`);
      else if (line !== last) out.write(`${line}\n`);
      last = line;
    },
  };
}
