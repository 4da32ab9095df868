import { createMiddleware } from 'hono/factory';
import { MacheteError } from '../../errors.ts';
import { roleAllows, type Principal, type Role, type TokenKind, type TokenService } from '../../auth/tokens.ts';
import type { EventLog } from '../../services/events.ts';

export type AuthEnv = { Variables: { principal: Principal } };

export function bearer(header: string | undefined): string | null {
  const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/.exec(header ?? '');
  return m ? m[1]! : null;
}

export interface AuthOptions {
  tokens: TokenService;
  /** Unused here since refusals are audited in one place (middleware/audit.ts); kept for callers. */
  events: EventLog;
  /** Token class accepted (default user). */
  kind?: TokenKind;
  /** Minimum role for user tokens. */
  role?: Role;
}

/** Verifies the bearer token of the given class and, for user tokens, the role. */
export function requireAuth(opts: AuthOptions) {
  const kind = opts.kind ?? 'user';
  return createMiddleware<AuthEnv>(async (c, next) => {
    const raw = bearer(c.req.header('authorization'));
    if (!raw) throw new MacheteError('unauthenticated', 'missing bearer token');
    const principal = await opts.tokens.verify(raw, kind);
    // Set before the role check: the audit trail (middleware/audit.ts) names the refused actor.
    c.set('principal', principal);
    if (kind === 'user' && opts.role && !roleAllows(principal.role!, opts.role)) {
      throw new MacheteError('forbidden', `this action needs the ${opts.role} role`);
    }
    await next();
  });
}

export function actorOf(p: Principal): string {
  if (p.kind === 'agent') return `host:${p.hostId}`;
  return `token:${p.tokenId}${p.name ? `(${p.name})` : ''}`;
}
