import type { Command } from 'commander';
import type { JoinTokenRequest, TokenRequest } from '../client.ts';
import { collect, intArg, type Ctx } from '../context.ts';
import { parseLabels, printJson, usageError } from '../io.ts';

const ROLES = ['admin', 'operator', 'viewer', 'invoker'] as const;

export function registerTokens(program: Command, ctx: Ctx): void {
  const token = program.command('token').description('issue and revoke API tokens (admin)');

  token
    .command('create')
    .description('issue a token; only the token is printed on stdout, so it can be piped or redirected')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'a name for the token (shown in audit events)')
    .option('--ttl <seconds>', 'lifetime in seconds (server default: 30 days)', intArg('--ttl', 60, 10 * 365 * 86_400))
    .option('--json', 'print id, token and expiry as JSON')
    .action(async (opts: { role: string; name?: string; ttl?: number; json?: boolean }) => {
      if (!(ROLES as readonly string[]).includes(opts.role)) throw usageError(`--role must be one of ${ROLES.join(', ')}`);
      const body: TokenRequest = { role: opts.role as TokenRequest['role'], ...(opts.name ? { name: opts.name } : {}), ...(opts.ttl ? { ttlSeconds: opts.ttl } : {}) };
      const t = await ctx.client().call('POST /tokens', { body });
      if (opts.json) return printJson(ctx.io, t);
      ctx.io.stdout.write(`${t.token}\n`);
      ctx.io.stderr.write(`token id ${t.id}, expires ${t.expiresAt} (revoke with: machete token revoke ${t.id})\n`);
    });

  token
    .command('revoke')
    .description('revoke a token; it is refused from then on')
    .argument('<id>', 'token id (as printed by token create), or the token itself')
    .action(async (idOrToken: string) => {
      const id = tokenId(idOrToken);
      await ctx.client().call('DELETE /tokens/{id}', { params: { id } });
      ctx.io.stdout.write(`token ${id} revoked\n`);
    });

  program
    .command('join-token')
    .description('tokens that agents trade for a host identity (admin)')
    .command('create')
    .description('issue a join token for MACHETE_JOIN_TOKEN; only the token is printed on stdout')
    .option('--ttl <seconds>', 'lifetime in seconds (server default: 1 hour)', intArg('--ttl', 60, 365 * 86_400))
    .option('--label <k=v>', 'label the host receives (repeatable)', collect)
    .option('--single-use', 'good for one enrollment only')
    .option('--json', 'print token and expiry as JSON')
    .action(async (opts: { ttl?: number; label?: string[]; singleUse?: boolean; json?: boolean }) => {
      const labels = opts.label?.length ? parseLabels(opts.label).set : undefined;
      const body: JoinTokenRequest = { ...(opts.ttl ? { ttlSeconds: opts.ttl } : {}), ...(labels ? { labels } : {}), ...(opts.singleUse ? { singleUse: true } : {}) };
      const t = await ctx.client().call('POST /hosts/join-tokens', { body });
      if (opts.json) return printJson(ctx.io, t);
      ctx.io.stdout.write(`${t.token}\n`);
      ctx.io.stderr.write(`expires ${t.expiresAt}\n`);
    });
}

/** A JWT carries its id as `jti`; read it (unverified, only to build the URL) so either form works. */
function tokenId(arg: string): string {
  const parts = arg.split('.');
  if (parts.length !== 3) return arg;
  try {
    const jti = (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti?: unknown }).jti;
    if (typeof jti === 'string' && jti) return jti;
  } catch {
    // not a JWT after all
  }
  throw usageError('that token carries no id; pass the id printed by token create');
}
