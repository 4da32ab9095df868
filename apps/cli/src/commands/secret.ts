import type { Command } from 'commander';
import type { Ctx } from '../context.ts';
import { ago, clean, printJson, printTable, readAll, usageError } from '../io.ts';

/** `machete secret set|ls|rm`: values go in on stdin only and never come back out. */
export function registerSecret(program: Command, ctx: Ctx): void {
  const secret = program.command('secret').description('secrets tools read from /run/secrets/NAME (operator)');

  secret
    .command('set')
    .description('create or change a secret; the value is read from stdin (never from the command line, which other users can see)')
    .argument('<name>', 'secret name (lowercase letters, digits, ".", "_", "-")')
    .option('--raw', 'keep a trailing newline (by default one is removed, as `echo` adds it)')
    .option('--json', 'print the metadata as JSON')
    .action(async (name: string, opts: { raw?: boolean; json?: boolean }) => {
      if (ctx.io.stdin.isTTY) throw usageError('pipe the value on stdin, e.g. `machete secret set NAME < file`');
      let value = await readAll(ctx.io.stdin);
      if (!opts.raw) value = value.replace(/\r?\n$/, '');
      if (value === '') throw usageError('the value on stdin is empty');
      const meta = await ctx.client().call('PUT /secrets/{name}', { params: { name }, body: { value } });
      if (opts.json) return printJson(ctx.io, meta);
      ctx.io.stdout.write(`secret ${clean(meta.name)} at version ${meta.version} (${meta.sizeBytes} bytes)\n`);
    });

  secret
    .command('ls')
    .description('list secrets: names and metadata, never values')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().call('GET /secrets');
      if (opts.json) return printJson(ctx.io, list);
      printTable(ctx.io, ['NAME', 'VERSION', 'BYTES', 'UPDATED'], list.map((s) => [clean(s.name), s.version, s.sizeBytes, ago(s.updatedAt)]), 'no secrets');
    });

  secret
    .command('rm')
    .description('delete a secret (refused while a tool names it)')
    .argument('<name>', 'secret name')
    .action(async (name: string) => {
      await ctx.client().call('DELETE /secrets/{name}', { params: { name } });
      ctx.io.stdout.write(`secret ${clean(name)} deleted\n`);
    });
}
