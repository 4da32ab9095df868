import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient, ApiError } from '../client.ts';
import { configPath, DEFAULT_SERVER, normalizeServer, readStoredConfig, writeStoredConfig } from '../config.ts';
import type { Ctx } from '../context.ts';
import { CliError, usageError } from '../io.ts';

/** The charset of a bearer token the API accepts (see its auth middleware). */
const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{1,8192}$/;

export function registerLogin(program: Command, ctx: Ctx): void {
  program
    .command('login')
    .description('check a token against the server, then store both in ~/.config/machete/config.json (mode 0600)')
    .option('--server <url>', `control plane URL (default: MACHETE_SERVER, the stored server, or ${DEFAULT_SERVER})`)
    .option('--token-file <file>', 'read the token from this file (default: stdin)')
    .addHelpText(
      'after',
      '\nThe token is read from stdin or --token-file, never from the command line, so it stays out of\nshell history and process lists:\n  machete login --server http://127.0.0.1:8090 < .machete/admin.token',
    )
    .action(async (opts: { server?: string; tokenFile?: string }) => {
      const { io } = ctx;
      let file: string;
      try {
        file = configPath(io.env);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const stored = readStoredOrFail(file);
      const server = parseServer(opts.server ?? (io.env.MACHETE_SERVER?.trim() || stored.server || DEFAULT_SERVER));
      const token = opts.tokenFile ? readTokenFile(opts.tokenFile) : await readTokenLine(ctx);
      if (!token) throw usageError('no token given: pipe it on stdin or pass --token-file FILE');
      if (!TOKEN_RE.test(token)) throw new CliError('that does not look like a MACHETE token');

      const client = new ApiClient({ server, token, ...(io.signal ? { signal: io.signal } : {}) });
      let note = '';
      try {
        await client.call('GET /tools');
      } catch (err) {
        // 403: the token is genuine but its role (invoker) may not list tools. Anything else is a refusal.
        if (!(err instanceof ApiError && err.status === 403)) {
          throw err instanceof ApiError ? new CliError(`${server} refused the token: ${err.message}`) : err;
        }
        note = ' (its role cannot list tools)';
      }
      writeStoredConfig(file, { server, token });
      io.stdout.write(`logged in to ${server}${note}; saved in ${file}\n`);
      if (io.env.MACHETE_TOKEN?.trim()) io.stderr.write('note: MACHETE_TOKEN is set and takes precedence over the saved token\n');
      if (io.env.MACHETE_SERVER?.trim() && opts.server) io.stderr.write('note: MACHETE_SERVER is set and takes precedence over the saved server\n');
    });
}

function readStoredOrFail(file: string) {
  try {
    return readStoredConfig(file);
  } catch {
    return {}; // a damaged file is simply replaced by this login
  }
}

function parseServer(raw: string): string {
  try {
    return normalizeServer(raw);
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

function readTokenFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CliError(`cannot read the token file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The first line of stdin: a pipe, a redirect, or a paste at the prompt. */
async function readTokenLine(ctx: Ctx): Promise<string> {
  const { stdin, stderr } = ctx.io;
  if (stdin.isTTY) stderr.write('Paste the token and press Enter: ');
  let buf = '';
  for await (const chunk of stdin) {
    buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (buf.includes('\n')) break;
  }
  return (buf.split(/\r?\n/)[0] ?? '').trim();
}
