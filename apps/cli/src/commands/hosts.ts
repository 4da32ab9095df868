import type { Command } from 'commander';
import type { Ctx } from '../context.ts';
import { ago, labelsText, parseLabels, printJson, printTable, usageError } from '../io.ts';

export function registerHosts(program: Command, ctx: Ctx): void {
  const hosts = program.command('hosts').alias('host').description('list hosts, drain, cordon or uncordon them, set their labels');

  hosts
    .command('ls')
    .alias('list')
    .description('list hosts with their status, labels and allocation')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().call('GET /hosts');
      if (opts.json) return printJson(ctx.io, list);
      printTable(
        ctx.io,
        ['ID', 'NAME', 'STATUS', 'SCHEDULABLE', 'INSTANCES', 'CPUS', 'MEMORY MB', 'LAST SEEN', 'LABELS'],
        list.map((h) => [
          h.id,
          h.name,
          h.status,
          h.schedulable ? 'yes' : 'no',
          h.allocated.instances,
          `${round(h.allocated.cpus)}/${round(h.capacity.cpus)}`,
          `${round(h.allocated.memoryMb)}/${round(h.capacity.memoryMb)}`,
          ago(h.lastSeenAt),
          labelsText(h.labels),
        ]),
        'no hosts',
      );
    });

  hosts
    .command('drain')
    .description('stop placing on a host and move its replicas elsewhere')
    .argument('<id>', 'host id')
    .option('--json', 'print the host as JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const h = await ctx.client().call('POST /hosts/{id}/drain', { params: { id } });
      if (opts.json) return printJson(ctx.io, h);
      ctx.io.stdout.write(`host/${h.id} (${h.name}) ${h.status}, ${h.allocated.instances} instances left on it\n`);
    });

  for (const [name, schedulable, description] of [
    ['cordon', false, 'stop placing new replicas on a host; those running there stay (drain moves them)'],
    ['uncordon', true, 'place replicas on a host again, after cordon or drain'],
  ] as const) {
    hosts
      .command(name)
      .description(description)
      .argument('<id>', 'host id')
      .option('--json', 'print the host as JSON')
      .action(async (id: string, opts: { json?: boolean }) => {
        const h = await ctx.client().call('PATCH /hosts/{id}', { params: { id }, body: { schedulable } });
        if (opts.json) return printJson(ctx.io, h);
        ctx.io.stdout.write(`host/${h.id} (${h.name}) ${h.status}, ${h.schedulable ? 'schedulable' : 'not schedulable'}\n`);
      });
  }

  hosts
    .command('label')
    .description('set (k=v) or remove (k-) labels of a host; other labels are kept')
    .argument('<id>', 'host id')
    .argument('<labels...>', 'k=v to set, k- to remove')
    .option('--json', 'print the host as JSON')
    .action(async (id: string, pairs: string[], opts: { json?: boolean }) => {
      const { set, remove } = parseLabels(pairs, true);
      if (!Object.keys(set).length && !remove.length) throw usageError('no labels given');
      const client = ctx.client();
      const params = { id };
      // PATCH replaces the whole label map: merge with the current one here.
      const current = await client.call('GET /hosts/{id}', { params });
      const labels = { ...current.labels, ...set };
      for (const k of remove) delete labels[k];
      const h = await client.call('PATCH /hosts/{id}', { params, body: { labels } });
      if (opts.json) return printJson(ctx.io, h);
      ctx.io.stdout.write(`host/${h.id} labels: ${labelsText(h.labels) || '(none)'}\n`);
    });
}

const round = (n: number) => Math.round(n * 100) / 100;
