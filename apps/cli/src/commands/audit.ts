import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { liveFailed, LIVE_HEADERS, liveRows, liveSummary, unansweredLines } from '../audit/live.ts';
import { ComposeLoadError } from '../audit/load.ts';
import { auditCompose, type Finding } from '../audit/rules.ts';
import type { AuditResult } from '../client.ts';
import type { Ctx } from '../context.ts';
import { CliError, EXIT, printJson, printTable, usageError } from '../io.ts';

const SEVERITY_ORDER = { high: 0, medium: 1, low: 2 } as const;

export function registerAudit(program: Command, ctx: Ctx): void {
  program
    .command('audit')
    .description(
      'the security monitor: ask every agent of the running MACHETE to inspect every container on its engine, managed or not ' +
        '(privileged, socket mounts, host namespaces, missing limits, …), or check a compose file with --compose; ' +
        'exit 1 when anything is found or a host did not report (admin token)',
    )
    .option('--compose <file>', 'check a docker-compose file statically instead (variables are interpolated from the environment, as docker-compose does)')
    .option('--json', 'print the report as JSON ({hosts, findings} live; {file, findings} with --compose)')
    .action(async (opts: { compose?: string; json?: boolean }) => {
      if (opts.compose !== undefined) {
        const findings = auditFile(opts.compose, ctx);
        report(ctx, opts.compose, findings, !!opts.json);
        if (findings.length > 0) throw new CliError('', EXIT.failed);
        return;
      }
      const result = await ctx.client().call('POST /audit');
      reportLive(ctx, result, !!opts.json);
      if (liveFailed(result)) throw new CliError('', EXIT.failed);
    });
}

function reportLive(ctx: Ctx, r: AuditResult, json: boolean): void {
  if (json) return printJson(ctx.io, r);
  const rows = liveRows(r);
  if (rows.length) printTable(ctx.io, LIVE_HEADERS, rows);
  for (const line of unansweredLines(r)) ctx.io.stderr.write(`${line}\n`);
  // The summary goes to stdout when it is all there is to say, so a clean run prints something.
  (rows.length ? ctx.io.stderr : ctx.io.stdout).write(`${liveSummary(r)}\n`);
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
