import type { Command } from 'commander';
import { ApiError } from '../client.ts';
import { intArg, type Ctx } from '../context.ts';
import { CliError, usageError } from '../io.ts';
import { parseSse, type SseMessage } from '../sse.ts';

type Kind = 'instances' | 'invocations';

interface Opts {
  follow?: boolean;
  tail?: number;
  since?: number;
  instance?: boolean;
  invocation?: boolean;
  json?: boolean;
}

function query(opts: Opts, kind: Kind) {
  // tail and since apply to container logs; an invocation's output is served whole.
  const instance = kind === 'instances';
  return { follow: opts.follow ? 'true' : undefined, tail: instance ? opts.tail : undefined, since: instance ? opts.since : undefined };
}

/** Opens the stream: the kind asked for, or an instance first and then an invocation of that id. */
async function open(ctx: Ctx, id: string, opts: Opts): Promise<ReadableStream<Uint8Array>> {
  const kinds: Kind[] = opts.instance ? ['instances'] : opts.invocation ? ['invocations'] : ['instances', 'invocations'];
  const client = ctx.client();
  for (const [i, kind] of kinds.entries()) {
    try {
      return await client.stream(kind === 'instances' ? 'GET /instances/{id}/logs' : 'GET /invocations/{id}/logs', { params: { id }, query: query(opts, kind) });
    } catch (err) {
      const last = i === kinds.length - 1;
      if (!(err instanceof ApiError && err.status === 404) || last) {
        if (err instanceof ApiError && err.status === 404 && kinds.length > 1) throw new CliError(`no instance or invocation ${id.slice(0, 64)}`);
        throw err;
      }
    }
  }
  throw new CliError('unreachable');
}

/** One SSE message: output goes out as it came, stdout to stdout and stderr to stderr; true once the stream is over. */
function print(ctx: Ctx, m: SseMessage, json: boolean): boolean {
  const { io } = ctx;
  if (m.event === 'ping') return false;
  let body: { stream?: 'stdout' | 'stderr'; data?: string; dropped?: number; reason?: string; error?: { message?: string; code?: string } };
  try {
    body = JSON.parse(m.data) as typeof body;
  } catch {
    return false;
  }
  if (json) io.stdout.write(`${JSON.stringify({ event: m.event, ...body })}\n`);
  if (m.event === 'stdout' || m.event === 'stderr') {
    if (!json && body.dropped) io.stderr.write(`machete: ${body.dropped} bytes of ${m.event} were dropped here\n`);
    if (!json && body.data) (m.event === 'stdout' ? io.stdout : io.stderr).write(body.data);
    return false;
  }
  if (m.event === 'error') throw new CliError(`log stream failed: ${body.error?.message ?? 'unknown error'}`);
  return m.event === 'end';
}

export function registerLogs(program: Command, ctx: Ctx): void {
  program
    .command('logs')
    .description("a replica instance's or an invocation's output: stdout to stdout, stderr to stderr")
    .argument('<id>', 'instance id (machete instances) or invocation id')
    .option('-f, --follow', 'keep printing until the container ends (or until interrupted)')
    .option('--tail <n>', 'last N lines only (instances)', intArg('--tail', 0, 100_000))
    .option('--since <unix-seconds>', 'output after this time only (instances)', intArg('--since', 0, 2 ** 40))
    .option('--instance', 'ID is an instance id')
    .option('--invocation', 'ID is an invocation id')
    .option('--json', 'one JSON object per event: {event, stream, data, …}')
    .action(async (id: string, opts: Opts) => {
      if (opts.instance && opts.invocation) throw usageError('--instance and --invocation exclude each other');
      const body = await open(ctx, id, opts);
      try {
        for await (const m of parseSse(body)) if (print(ctx, m, !!opts.json)) return;
      } catch (err) {
        if (ctx.io.signal?.aborted) return;
        if (err instanceof CliError) throw err;
        throw new CliError(`log stream broke off: ${(err as Error).message}`);
      }
      if (ctx.io.signal?.aborted) return;
      throw new CliError('log stream broke off before its end');
    });
}
