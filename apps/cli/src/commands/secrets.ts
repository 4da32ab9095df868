import { InvalidArgumentError, type Command } from 'commander';
import type { Ctx } from '../context.ts';
import { intArg } from '../context.ts';
import { printJson, printTable } from '../io.ts';
import { initSecrets } from '../secretsInit.ts';

export function registerSecrets(program: Command, ctx: Ctx): void {
  program
    .command('secrets')
    .description('secret files for the compose deployment (compose/docker-compose.yml)')
    .command('init')
    .description('generate the signing key, the secrets-at-rest key, the metrics token, the PostgreSQL password and DATABASE_URL (mode 0600) and empty join-token files; prints names, never values')
    .option('--dir <dir>', 'where to write them (git-ignored)', 'secrets')
    .option('--hosts <n>', 'join_token_hostN files to create', intArg('--hosts', 0, 100), 2)
    .option('--force', 'replace generated secrets that exist (join-token files are never emptied)')
    .option('--owner <uid:gid>', 'chown the files (as root): the compose services read them as 1000:1000', ownerArg)
    .option('--json', 'print what happened to each file as JSON')
    .action((opts: { dir: string; hosts: number; force?: boolean; owner?: { uid: number; gid: number }; json?: boolean }) => {
      const results = initSecrets({ dir: opts.dir, hosts: opts.hosts, force: !!opts.force, ...(opts.owner ? { owner: opts.owner } : {}) });
      if (opts.json) return printJson(ctx.io, results);
      printTable(ctx.io, ['FILE', 'STATUS', 'NOTE'], results.map((r) => [r.file, r.status, r.note]));
    });
}

function ownerArg(raw: string): { uid: number; gid: number } {
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(raw.trim());
  if (!m) throw new InvalidArgumentError('--owner must be UID or UID:GID (numbers)');
  const uid = Number(m[1]);
  return { uid, gid: m[2] === undefined ? uid : Number(m[2]) };
}
