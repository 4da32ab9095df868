import type { Command } from 'commander';
import type { Invocation } from '../client.ts';
import { collect, intArg, type Ctx } from '../context.ts';
import { CliError, printJson, usageError, type CliIo } from '../io.ts';


/** Exit code of `machete invoke` when the tool did not exit by itself (timeout, cancel, refusal). */
const EXIT_NOT_RUN = { timeout: 124, cancelled: 130 } as const;

async function readStdin(io: CliIo): Promise<string> {
  let s = '';
  for await (const chunk of io.stdin) s += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  return s;
}

function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw usageError(`--env ${p.slice(0, 40)}: expected NAME=value`);
    env[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return env;
}

/** Polls until the invocation finishes; an interrupt cancels it on the server. */
async function follow(ctx: Ctx, id: string): Promise<Invocation> {
  const client = ctx.client();
  let delay = 25;
  for (;;) {
    if (ctx.io.signal?.aborted) {
      const { ApiClient } = await import('../client.ts');
      const c = ctx.config();
      // The command's own client is aborted with the signal; cancel with a fresh one.
      return new ApiClient({ server: c.server, token: c.token }).call('DELETE /invocations/{id}', { params: { id } });
    }
    const inv = await client.call('GET /invocations/{id}', { params: { id } }).catch((err) => {
      if (ctx.io.signal?.aborted) return null;
      throw err;
    });
    if (inv && inv.status !== 'running') return inv;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(500, delay * 2);
  }
}

export function registerInvoke(program: Command, ctx: Ctx): void {
  program
    .command('invoke')
    .description("run a tool once; prints its stdout (stderr to stderr) and exits with the tool's exit code")
    .argument('<name>', 'tool name')
    .argument('[args...]', 'arguments appended to the command (put them after --)')
    .option('--stdin', 'send this process\'s standard input to the tool')
    .option('-e, --env <NAME=value>', 'environment override (repeatable)', collect, [])
    .option('--timeout <seconds>', 'kill it after this long (capped by the tool\'s own timeout)', intArg('timeout', 1, 86_400))
    .option('--async', 'print the invocation id and return at once')
    .option('--json', 'print the whole result as JSON')
    .action(async (name: string, args: string[], opts: { stdin?: boolean; env: string[]; timeout?: number; async?: boolean; json?: boolean }) => {
      const body = {
        args,
        env: parseEnv(opts.env),
        wait: false,
        ...(opts.stdin ? { stdin: await readStdin(ctx.io) } : {}),
        ...(opts.timeout ? { timeoutSeconds: opts.timeout } : {}),
      };
      const { id } = await ctx.client().call('POST /tools/{name}/invoke', { params: { name }, body });
      if (opts.async) {
        if (opts.json) printJson(ctx.io, { id });
        else ctx.io.stdout.write(`${id}\n`);
        return;
      }
      const inv = await follow(ctx, id);
      if (opts.json) printJson(ctx.io, inv);
      else {
        ctx.io.stdout.write(inv.stdout);
        ctx.io.stderr.write(inv.stderr);
        if (inv.truncated) ctx.io.stderr.write('machete: output truncated at the cap\n');
      }
      if (inv.status === 'succeeded') return;
      if (inv.exitCode !== null && inv.status === 'failed') throw new CliError('', inv.exitCode);
      const code = inv.status === 'timeout' ? EXIT_NOT_RUN.timeout : inv.status === 'cancelled' ? EXIT_NOT_RUN.cancelled : 1;
      throw new CliError(`invocation ${inv.status}${inv.reason ? `: ${inv.reason}` : ''}`, code);
    });

  const invocation = program.command('invocation').description('inspect or cancel invocations');
  invocation
    .command('get')
    .argument('<id>')
    .option('--json', 'print the raw JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const inv = await ctx.client().call('GET /invocations/{id}', { params: { id } });
      if (opts.json) return printJson(ctx.io, inv);
      const lines = [
        `id:        ${inv.id}`,
        `tool:      ${inv.tool} (version ${inv.version})`,
        `status:    ${inv.status}${inv.exitCode !== null ? ` (exit code ${inv.exitCode})` : ''}`,
        `host:      ${inv.hostId ?? '-'}`,
        `duration:  ${inv.durationMs !== null ? `${inv.durationMs} ms` : '-'}`,
        ...(inv.reason ? [`reason:    ${inv.reason}`] : []),
        ...(inv.truncated ? ['output:    truncated at the cap'] : []),
      ];
      ctx.io.stdout.write(`${lines.join('\n')}\n`);
    });
  invocation
    .command('cancel')
    .argument('<id>')
    .action(async (id: string) => {
      const inv = await ctx.client().call('DELETE /invocations/{id}', { params: { id } });
      ctx.io.stdout.write(`${inv.id} ${inv.status}\n`);
    });
}
