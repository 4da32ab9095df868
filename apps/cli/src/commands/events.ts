import type { Command } from 'commander';
import { ApiError, type ApiEvent } from '../client.ts';
import { intArg, type Ctx } from '../context.ts';
import { clean, formatTable, printJson, sleep } from '../io.ts';
import { parseSse } from '../sse.ts';

const RECONNECT_MS = 1_000;

export function registerEvents(program: Command, ctx: Ctx): void {
  program
    .command('events')
    .description('audit and lifecycle events, newest last')
    .option('-f, --follow', 'keep printing new events until interrupted')
    .option('--limit <n>', 'how many past events to show first', intArg('--limit', 1, 1000), 100)
    .option('--json', 'print the raw JSON (one object per line when following)')
    .action(async (opts: { follow?: boolean; limit: number; json?: boolean }) => {
      if (opts.follow) return follow(ctx, opts.limit, !!opts.json);
      const list = await ctx.client().call('GET /events', { query: { limit: opts.limit } });
      if (opts.json) return printJson(ctx.io, list);
      if (!list.length) return void ctx.io.stderr.write('no events\n');
      const table = formatTable(
        ['ID', 'TIME', 'KIND', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'REASON'],
        list.map((e) => [e.id, e.at, e.kind, e.actor, e.action, e.target, e.outcome, e.reason]),
      );
      ctx.io.stdout.write(`${table}\n`);
    });
}

/** One line per followed event: columns cannot be aligned with events still to come. */
export function eventLine(e: ApiEvent): string {
  const target = e.target ? ` ${e.target}` : '';
  const reason = e.reason ? `: ${e.reason}` : '';
  return clean(`${e.at}  #${e.id}  ${e.kind}  ${e.action}${target}  ${e.outcome} by ${e.actor}${reason}`);
}

/**
 * Streams `GET /events?follow=true` until the signal aborts. A stream that breaks after it
 * was open (server restart, proxy timeout) is reopened after the last id seen, so nothing
 * is printed twice; a refusal (401/403/404) or a first connection that fails is final.
 */
async function follow(ctx: Ctx, limit: number, json: boolean): Promise<void> {
  const { io } = ctx;
  const client = ctx.client();
  let last: number | null = null;
  let opened = false;
  let warned = false;
  while (!io.signal?.aborted) {
    try {
      const query = last === null ? { follow: 'true', limit } : { follow: 'true', after: last, limit: 1000 };
      const body = await client.stream('GET /events', { query });
      opened = true;
      warned = false;
      for await (const m of parseSse(body)) {
        if (m.event === 'ping') continue;
        let e: ApiEvent;
        try {
          e = JSON.parse(m.data) as ApiEvent;
        } catch {
          continue;
        }
        if (last !== null && e.id <= last) continue;
        last = e.id;
        io.stdout.write(json ? `${JSON.stringify(e)}\n` : `${eventLine(e)}\n`);
      }
    } catch (err) {
      if (io.signal?.aborted) return;
      if (!opened || err instanceof ApiError) throw err;
    }
    if (io.signal?.aborted) return;
    if (!warned) io.stderr.write('event stream interrupted; reconnecting…\n');
    warned = true;
    await sleep(RECONNECT_MS, io.signal).catch(() => {});
  }
}
