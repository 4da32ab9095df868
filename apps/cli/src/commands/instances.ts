import type { Command } from 'commander';
import type { Ctx } from '../context.ts';
import { ago, printJson, printTable } from '../io.ts';

export function registerInstances(program: Command, ctx: Ctx): void {
  program
    .command('instances')
    .alias('ps')
    .description('list instances (replicas) and their state')
    .option('--tool <name>', 'only this tool')
    .option('--host <id>', 'only this host')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { tool?: string; host?: string; json?: boolean }) => {
      const list = await ctx.client().call('GET /instances', { query: { tool: opts.tool, host: opts.host } });
      if (opts.json) return printJson(ctx.io, list);
      printTable(
        ctx.io,
        ['ID', 'TOOL', 'VERSION', 'HOST', 'DESIRED', 'STATE', 'RESTARTS', 'CONTAINER', 'UPDATED', 'REASON'],
        list.map((i) => [
          i.id,
          i.tool,
          i.runningVersion !== null && i.runningVersion !== i.version ? `${i.runningVersion}→${i.version}` : i.version,
          i.hostId,
          i.desired,
          i.state,
          i.restarts,
          i.containerId?.slice(0, 12),
          ago(i.updatedAt),
          i.reason ?? (i.exitCode !== null && i.state !== 'running' ? `exit code ${i.exitCode}` : null),
        ]),
        'no instances',
      );
    });
}
