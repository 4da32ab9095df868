import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ComposeLoadError } from '../audit/load.ts';
import { auditCompose, type Finding } from '../audit/rules.ts';
import type { Ctx } from '../context.ts';
import { CliError, EXIT, printJson, printTable, usageError } from '../io.ts';

const SEVERITY_ORDER = { high: 0, medium: 1, low: 2 } as const;

export function registerAudit(program: Command, ctx: Ctx): void {
  program
    .command('audit')
    .description('the security monitor: check a compose file for socket mounts, privileged services, inline secrets, missing limits, …; exit 1 when anything is found')
    .option('--compose <file>', 'a docker-compose file to check statically (variables are interpolated from the environment, as docker-compose does)')
    .option('--json', 'print {file, findings} as JSON')
    .action((opts: { compose?: string; json?: boolean }) => {
      if (!opts.compose) throw usageError('give --compose FILE (auditing a running MACHETE arrives with its API route)');
      const findings = auditFile(opts.compose, ctx);
      report(ctx, opts.compose, findings, !!opts.json);
      if (findings.length > 0) throw new CliError('', EXIT.failed);
    });
}

function auditFile(file: string, ctx: Ctx): Finding[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return auditCompose(text, ctx.io.env);
  } catch (err) {
    if (err instanceof ComposeLoadError) throw usageError(`${file}: ${err.message}`);
    throw err;
  }
}

function report(ctx: Ctx, file: string, findings: Finding[], json: boolean): void {
  if (json) return printJson(ctx.io, { file, findings });
  if (findings.length === 0) {
    ctx.io.stdout.write(`${file}: no findings\n`);
    return;
  }
  const sorted = [...findings].sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
  printTable(ctx.io, ['SEVERITY', 'RULE', 'SERVICE', 'FINDING'], sorted.map((f) => [f.severity, f.rule, f.service, f.message]));
  ctx.io.stderr.write(`${findings.length} finding${findings.length === 1 ? '' : 's'} in ${file}\n`);
}
