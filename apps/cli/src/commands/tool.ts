import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import YAML from 'yaml';
import { ToolSpecSchema } from '../../../../protocol/src/index.ts';
import type { Tool, ToolSpecInput } from '../client.ts';
import type { Ctx } from '../context.ts';
import { ago, CliError, printJson, printTable, readAll, usageError } from '../io.ts';

export function registerTool(program: Command, ctx: Ctx): void {
  const tool = program.command('tool').description('create, list, show and delete tools');

  tool
    .command('apply')
    .description('create or update a tool from a YAML or JSON spec (a changed spec becomes a new version)')
    .argument('[name]', 'tool name (else --name, else the "name" field of the file)')
    .requiredOption('-f, --file <file>', 'spec file, YAML or JSON ("-" for stdin)')
    .option('--name <name>', 'tool name')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample spec (only image is required):\n  name: hello\n  image: busybox:latest\n  command: [sleep, "3600"]\n  resources: {cpus: 0.5, memoryMb: 256}')
    .action(async (positional: string | undefined, opts: { file: string; name?: string; json?: boolean }) => {
      const doc = await readSpec(ctx, opts.file);
      const fromFile = doc.name;
      if (fromFile !== undefined && typeof fromFile !== 'string') throw new CliError(`${opts.file}: "name" must be a string`);
      if (opts.name && positional && opts.name !== positional) throw usageError('the name is given twice (--name and NAME) with different values');
      const name = opts.name ?? positional ?? fromFile;
      if (!name) throw usageError('which tool? give --name NAME, a NAME argument, or a "name" field in the file');
      const { name: _dropped, ...spec } = doc;

      const client = ctx.client();
      const params = { name };
      // The PUT answer does not say which of created/updated/unchanged happened: compare with what was there.
      const before = await client.find('GET /tools/{name}', { params });
      // The file's content is the server's to validate (one 400 naming the field), not the CLI's.
      const after = await client.call('PUT /tools/{name}', { params, body: spec as ToolSpecInput });
      const status = !before ? 'created' : before.version !== after.version ? 'updated' : 'unchanged';
      if (opts.json) printJson(ctx.io, { status, tool: after });
      else ctx.io.stdout.write(`tool/${after.name} ${status} (version ${after.version})\n`);
    });

  tool
    .command('ls')
    .alias('list')
    .description('list tools')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { json?: boolean }) => {
      const tools = await ctx.client().call('GET /tools');
      if (opts.json) return printJson(ctx.io, tools);
      printTable(
        ctx.io,
        ['NAME', 'VERSION', 'IMAGE', 'COMMAND', 'UPDATED'],
        tools.map((t) => [t.name, t.version, t.spec.image, (t.spec.command ?? []).join(' ').slice(0, 40), ago(t.updatedAt)]),
        'no tools',
      );
    });

  tool
    .command('get')
    .description('show a tool; the YAML printed can be edited and applied again')
    .argument('<name>', 'tool name')
    .option('--json', 'print the raw JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const t = await ctx.client().call('GET /tools/{name}', { params: { name } });
      if (opts.json) return printJson(ctx.io, t);
      ctx.io.stdout.write(`# version ${t.version}, created ${t.createdAt}, updated ${t.updatedAt}\n${YAML.stringify(inSpecOrder(t))}`);
    });

  tool
    .command('rm')
    .alias('delete')
    .description('delete a tool; its replicas are removed from every host')
    .argument('<name>', 'tool name')
    .action(async (name: string) => {
      await ctx.client().call('DELETE /tools/{name}', { params: { name } });
      ctx.io.stdout.write(`tool/${name} deleted\n`);
    });
}

/** The database hands the spec back in its own key order; print it in the order of the spec's schema. */
function inSpecOrder(t: Tool): Record<string, unknown> {
  const spec = t.spec as Record<string, unknown>;
  const known = Object.keys(ToolSpecSchema.shape);
  const out: Record<string, unknown> = { name: t.name };
  for (const k of [...known, ...Object.keys(spec).filter((k) => !known.includes(k))]) if (spec[k] !== undefined) out[k] = spec[k];
  return out;
}

/** The spec file as an object: JSON for *.json, YAML (a superset of JSON) otherwise. */
async function readSpec(ctx: Ctx, file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = file === '-' ? await readAll(ctx.io.stdin) : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = path.extname(file).toLowerCase() === '.json' ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new CliError(`${file}: not valid ${path.extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new CliError(`${file}: the spec must be a mapping (image, command, …)`);
  return doc as Record<string, unknown>;
}
