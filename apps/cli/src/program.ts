import { Command } from 'commander';
import { registerAudit } from './commands/audit.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerEvents } from './commands/events.ts';
import { registerHosts } from './commands/hosts.ts';
import { registerInstances } from './commands/instances.ts';
import { registerInvoke } from './commands/invoke.ts';
import { registerLogs } from './commands/logs.ts';
import { registerLogin } from './commands/login.ts';
import { registerScale } from './commands/scale.ts';
import { registerSecret } from './commands/secret.ts';
import { registerSecrets } from './commands/secrets.ts';
import { registerTokens } from './commands/tokens.ts';
import { registerTool } from './commands/tool.ts';
import type { Ctx } from './context.ts';

const AFTER_HELP = `
Also (started by the same bin):
  serve                 the control plane, plus a local agent unless MACHETE_LOCAL_AGENT=false
  agent                 an agent alone (MACHETE_SERVER, MACHETE_JOIN_TOKEN[_FILE], DOCKER_HOST, …)

Configuration: machete login stores the server and token in ~/.config/machete/config.json
(mode 0600); MACHETE_SERVER and MACHETE_TOKEN override it. Exit codes: 0 ok, 1 failed, 2 usage.
The HTTP API is documented at /api/docs on a running control plane.`;

/** The command index: one fresh commander program per run, so in-process runs share nothing. */
export function buildProgram(ctx: Ctx): Command {
  const { io } = ctx;
  const program = new Command('machete')
    .description('Run containerized tools on a fleet of hosts, safely.')
    .usage('<command> [options]')
    // Set before the commands are added: subcommands inherit both.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(`machete: ${s.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
      getOutHelpWidth: () => (io.stdout.isTTY ? ((io.stdout as { columns?: number }).columns ?? 80) : 100),
      getErrHelpWidth: () => 100,
    })
    .showSuggestionAfterError(true)
    .addHelpText('after', AFTER_HELP);

  registerLogin(program, ctx);
  registerTool(program, ctx);
  registerScale(program, ctx);
  registerInstances(program, ctx);
  registerHosts(program, ctx);
  registerTokens(program, ctx);
  registerEvents(program, ctx);
  registerInvoke(program, ctx);
  registerLogs(program, ctx);
  registerSecret(program, ctx);
  registerSecrets(program, ctx);
  registerAudit(program, ctx);
  registerCompletion(program, ctx);
  return program;
}
