import { randomUUID } from 'node:crypto';
import { and, eq, isNull, notInArray } from 'drizzle-orm';
import { jwtVerify, SignJWT } from 'jose';
import { tokens, type Db } from '../../../../db/src/index.ts';
import { MacheteError } from '../errors.ts';

export const ROLES = ['admin', 'operator', 'viewer', 'invoker'] as const;
export type Role = (typeof ROLES)[number];
export type TokenKind = 'user' | 'agent' | 'join';

const ISSUER = 'machete';
const ALG = 'HS256';
/** One audience and one `typ` per token class, so a token of one class is useless as another. */
const CLASS: Record<TokenKind, { aud: string; typ: string }> = {
  user: { aud: 'machete:api', typ: 'machete-user+jwt' },
  agent: { aud: 'machete:agent', typ: 'machete-agent+jwt' },
  join: { aud: 'machete:join', typ: 'machete-join+jwt' },
};

export interface Principal {
  kind: TokenKind;
  tokenId: string;
  /** user tokens: role; others null */
  role: Role | null;
  /** agent tokens: the one host it may act for */
  hostId: string | null;
  name: string | null;
  /** join tokens: labels the host receives */
  labels?: Record<string, string>;
  /** join tokens: good for one enrollment only */
  singleUse?: boolean;
}

export interface IssueRequest {
  kind: TokenKind;
  ttlSeconds: number;
  role?: Role;
  hostId?: string;
  name?: string;
  labels?: Record<string, string>;
  /** join tokens: good for one enrollment only */
  singleUse?: boolean;
}

export interface TokenService {
  issue(req: IssueRequest): Promise<{ id: string; token: string; expiresAt: Date }>;
  /** Verifies signature, claims, class and revocation. Throws `unauthenticated`. */
  verify(token: string, kind: TokenKind): Promise<Principal>;
  revoke(id: string): Promise<boolean>;
  /** Revokes the token if it is still live; true only for the one caller that did (a single-use token's one use). */
  consume(id: string): Promise<boolean>;
  /** Revokes every live agent token of the host except those in `keep`; returns how many. */
  revokeHost(hostId: string, keep?: string[]): Promise<number>;
}

/** The only header parameters MACHETE issues; anything else (kid, jku, x5u, jwk, x5c, crit…) is refused. */
const ALLOWED_HEADER = new Set(['alg', 'typ']);

const unauthenticated = () => new MacheteError('unauthenticated', 'missing, invalid, expired or revoked token');

export function createTokenService(db: Db, key: Uint8Array): TokenService {
  return {
    async issue(req) {
      const id = randomUUID();
      const now = Math.floor(Date.now() / 1000);
      const exp = now + req.ttlSeconds;
      const cls = CLASS[req.kind];
      const claims: Record<string, unknown> = { kind: req.kind };
      if (req.role) claims.role = req.role;
      if (req.hostId) claims.host = req.hostId;
      if (req.labels) claims.labels = req.labels;
      if (req.singleUse) claims.once = true;
      if (req.name) claims.name = req.name;
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: ALG, typ: cls.typ })
        .setIssuer(ISSUER)
        .setAudience(cls.aud)
        .setSubject(req.hostId ?? req.name ?? req.kind)
        .setJti(id)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .sign(key);
      const expiresAt = new Date(exp * 1000);
      await db.insert(tokens).values({ id, kind: req.kind, role: req.role ?? null, name: req.name ?? null, hostId: req.hostId ?? null, expiresAt });
      return { id, token, expiresAt };
    },

    async verify(token, kind) {
      const cls = CLASS[kind];
      let payload;
      let header;
      try {
        ({ payload, protectedHeader: header } = await jwtVerify(token, key, {
          algorithms: [ALG],
          issuer: ISSUER,
          audience: cls.aud,
          typ: cls.typ,
          requiredClaims: ['exp', 'jti', 'iat'],
          clockTolerance: 5,
        }));
      } catch {
        // Whatever the token made the verifier throw, it is the client's fault, never a 500.
        throw unauthenticated();
      }
      if (Object.keys(header).some((h) => !ALLOWED_HEADER.has(h))) throw unauthenticated();
      if (payload.kind !== kind || typeof payload.jti !== 'string') throw unauthenticated();
      const [row] = await db.select({ revokedAt: tokens.revokedAt, kind: tokens.kind }).from(tokens).where(eq(tokens.id, payload.jti));
      if (!row || row.revokedAt || row.kind !== kind) throw unauthenticated();
      const role = typeof payload.role === 'string' && (ROLES as readonly string[]).includes(payload.role) ? (payload.role as Role) : null;
      if (kind === 'user' && !role) throw unauthenticated();
      const hostId = typeof payload.host === 'string' ? payload.host : null;
      if (kind === 'agent' && !hostId) throw unauthenticated();
      const labels = kind === 'join' && payload.labels && typeof payload.labels === 'object' ? (payload.labels as Record<string, string>) : undefined;
      const singleUse = kind === 'join' && payload.once === true;
      return { kind, tokenId: payload.jti, role, hostId, name: typeof payload.name === 'string' ? payload.name : null, labels, ...(singleUse ? { singleUse } : {}) };
    },

    async revoke(id) {
      const rows = await db.update(tokens).set({ revokedAt: new Date() }).where(eq(tokens.id, id)).returning({ id: tokens.id });
      return rows.length > 0;
    },

    async consume(id) {
      const rows = await db.update(tokens).set({ revokedAt: new Date() }).where(and(eq(tokens.id, id), isNull(tokens.revokedAt))).returning({ id: tokens.id });
      return rows.length > 0;
    },

    async revokeHost(hostId, keep = []) {
      const live = and(eq(tokens.hostId, hostId), eq(tokens.kind, 'agent'), isNull(tokens.revokedAt));
      const rows = await db
        .update(tokens)
        .set({ revokedAt: new Date() })
        .where(keep.length ? and(live, notInArray(tokens.id, keep)) : live)
        .returning({ id: tokens.id });
      return rows.length;
    },
  };
}

const RANK: Record<Role, number> = { invoker: 0, viewer: 1, operator: 2, admin: 3 };
/** admin ⊃ operator ⊃ viewer; invoker is its own lane (invoke + read its invocations). */
export function roleAllows(have: Role, need: Role): boolean {
  if (need === 'invoker') return true;
  if (have === 'invoker') return false;
  return RANK[have] >= RANK[need];
}
