import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseAllowedMounts, parseImagePatterns, type AllowedMount, type ImagePattern } from '../../../protocol/src/index.ts';

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? def : v === 'true' || v === '1' || v === 'yes'));
const int = (def: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      return n;
    });

/** Environment variables the control plane reads, field by field (README "Configuration"). */
const EnvSchema = z.object({
  /** TCP port of the HTTP API, dashboard and agent endpoint. */
  MACHETE_PORT: int(8090, 0, 65535),
  /** Address to listen on; 0.0.0.0 to accept agents from other hosts. */
  MACHETE_BIND: z.string().min(1).default('127.0.0.1'),
  /** Data directory: PGlite database, generated secret.key and admin.token. */
  MACHETE_DATA_DIR: z.string().min(1).default('./.machete'),
  /** PostgreSQL URL; when unset, embedded PGlite under the data dir is used. */
  DATABASE_URL: z.string().min(1).optional(),
  /** File holding the PostgreSQL URL (wins over DATABASE_URL). */
  DATABASE_URL_FILE: z.string().min(1).optional(),
  /** Signing key file (≥ 32 bytes, mode 0600). Defaults to <data dir>/secret.key, generated on first start. */
  SECRET_KEY_FILE: z.string().min(1).optional(),
  /**
   * Key material for secrets at rest (≥ 32 bytes, mode 0600, same rules as the signing key).
   * Unset: the secrets key is derived from the signing key with HKDF (a separate key either way).
   */
  MACHETE_SECRETS_KEY_FILE: z.string().min(1).optional(),
  /** Comma-separated image patterns (`registry.example.com/*`, `team/*:*`); empty: any image. */
  MACHETE_ALLOWED_IMAGES: z.string().default(''),
  /**
   * Fleet-wide mount allowlist (`/path:ro,/path:rw`, the agents' syntax) checked on PUT /tools on top
   * of each agent's own list. Empty or unset: no fleet-wide list (each host decides); the sensitive-path
   * and target rules apply either way.
   */
  MACHETE_ALLOWED_MOUNTS: z.string().default(''),
  /** Start one agent for the local engine in the same process. */
  MACHETE_LOCAL_AGENT: bool(true),
  /** Interval of server→agent heartbeats (ms). */
  MACHETE_HEARTBEAT_MS: int(5000, 100, 600_000),
  /** A host without contact for this long is marked down. */
  MACHETE_HEARTBEAT_GRACE_SECONDS: int(30, 1, 86_400),
  /**
   * Lifetime of an agent's host credential. Agents renew it at about two thirds of it
   * (POST /api/v1/agent/renew), so a short value only costs a request per host per renewal.
   */
  MACHETE_AGENT_TOKEN_TTL_SECONDS: int(30 * 86_400, 2, 365 * 86_400),
  /** pino log level. */
  MACHETE_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Requests per second each token (or, without one, each source address) may make under /api/v1; 0 turns the limit off. */
  MACHETE_RATE_LIMIT_PER_SECOND: int(100, 0, 1_000_000),
  /** Requests a token may make at once before the per-second rate applies. */
  MACHETE_RATE_LIMIT_BURST: int(200, 1, 1_000_000),
  /** A client must finish sending its request headers within this time (slow-header / half-open connections are dropped). */
  MACHETE_HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100, 600_000),
  /** A client must finish sending its whole request (headers and body) within this time; must be ≥ the headers timeout. */
  MACHETE_HTTP_REQUEST_TIMEOUT_MS: int(60_000, 100, 3_600_000),
  /** Bytes the server may queue for an agent that does not read; past it the connection is dropped. */
  MACHETE_AGENT_SEND_BUFFER_BYTES: int(8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  /** Invocations running at once per tool / per host; beyond them, 429. */
  MACHETE_INVOKE_MAX_PER_TOOL: int(32, 1, 100_000),
  MACHETE_INVOKE_MAX_PER_HOST: int(16, 1, 100_000),
  /** Cap of stdout and of stderr per invocation, in bytes. */
  MACHETE_INVOKE_MAX_OUTPUT_BYTES: int(1024 * 1024, 1024, 1024 * 1024),
  /** Finished invocations are deleted after this many hours. */
  MACHETE_INVOCATION_RETENTION_HOURS: int(24, 1, 24 * 365),
  /** File holding the bearer token Prometheus must send to GET /metrics (an admin token works too). */
  MACHETE_METRICS_TOKEN_FILE: z.string().min(1).optional(),
});

export interface ApiConfig {
  readonly port: number;
  readonly bind: string;
  readonly dataDir: string;
  readonly database: { readonly driver: 'postgres'; readonly url: string } | { readonly driver: 'pglite'; readonly dataDir: string };
  /** Explicitly configured key file (must exist) or the generated default. */
  readonly secretKey: { readonly file: string; readonly generateIfMissing: boolean };
  /** Dedicated secrets key file, or null to derive the secrets key from the signing key. */
  readonly secretsKeyFile: string | null;
  /** null: any image is allowed. */
  readonly allowedImages: readonly ImagePattern[] | null;
  /** null: no fleet-wide mount allowlist (MACHETE_ALLOWED_MOUNTS unset or empty). */
  readonly allowedMounts: readonly AllowedMount[] | null;
  readonly localAgent: boolean;
  readonly heartbeatMs: number;
  readonly heartbeatGraceSeconds: number;
  readonly agentTokenTtlSeconds: number;
  readonly logLevel: string;
  readonly http: { readonly headersTimeoutMs: number; readonly requestTimeoutMs: number; readonly ratePerSecond: number; readonly rateBurst: number };
  readonly agentSendBufferBytes: number;
  readonly invocations: { readonly maxPerTool: number; readonly maxPerHost: number; readonly maxOutputBytes: number; readonly retentionHours: number };
  /** /metrics: a scrape token from MACHETE_METRICS_TOKEN_FILE; without one it is open only on a loopback bind. */
  readonly metrics: { readonly token: string | null; readonly open: boolean };
}

/** Reads the environment once. Throws a readable error naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined>): ApiConfig {
  const r = EnvSchema.safeParse(env);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`configuration: ${String(i?.path[0])} ${i?.message ?? 'is invalid'}`);
  }
  const e = r.data;
  if (e.MACHETE_HTTP_HEADERS_TIMEOUT_MS > e.MACHETE_HTTP_REQUEST_TIMEOUT_MS) throw new Error('configuration: MACHETE_HTTP_HEADERS_TIMEOUT_MS must not exceed MACHETE_HTTP_REQUEST_TIMEOUT_MS');
  const dataDir = path.resolve(e.MACHETE_DATA_DIR);
  const metricsToken = e.MACHETE_METRICS_TOKEN_FILE ? readFileSync(e.MACHETE_METRICS_TOKEN_FILE, 'utf8').trim() : null;
  if (metricsToken !== null && metricsToken.length < 16) throw new Error('configuration: MACHETE_METRICS_TOKEN_FILE must hold a token of at least 16 characters');
  const url = e.DATABASE_URL_FILE ? readFileSync(e.DATABASE_URL_FILE, 'utf8').trim() : e.DATABASE_URL;
  return Object.freeze({
    port: e.MACHETE_PORT,
    bind: e.MACHETE_BIND,
    dataDir,
    database: url ? { driver: 'postgres' as const, url } : { driver: 'pglite' as const, dataDir: path.join(dataDir, 'db') },
    secretKey: e.SECRET_KEY_FILE
      ? { file: path.resolve(e.SECRET_KEY_FILE), generateIfMissing: false }
      : { file: path.join(dataDir, 'secret.key'), generateIfMissing: true },
    secretsKeyFile: e.MACHETE_SECRETS_KEY_FILE ? path.resolve(e.MACHETE_SECRETS_KEY_FILE) : null,
    allowedImages: parseImagePatterns(e.MACHETE_ALLOWED_IMAGES),
    allowedMounts: e.MACHETE_ALLOWED_MOUNTS.trim() === '' ? null : Object.freeze(parseAllowedMounts(e.MACHETE_ALLOWED_MOUNTS)),
    localAgent: e.MACHETE_LOCAL_AGENT,
    heartbeatMs: e.MACHETE_HEARTBEAT_MS,
    heartbeatGraceSeconds: e.MACHETE_HEARTBEAT_GRACE_SECONDS,
    agentTokenTtlSeconds: e.MACHETE_AGENT_TOKEN_TTL_SECONDS,
    logLevel: e.MACHETE_LOG_LEVEL,
    http: Object.freeze({
      headersTimeoutMs: e.MACHETE_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.MACHETE_HTTP_REQUEST_TIMEOUT_MS,
      ratePerSecond: e.MACHETE_RATE_LIMIT_PER_SECOND,
      rateBurst: e.MACHETE_RATE_LIMIT_BURST,
    }),
    agentSendBufferBytes: e.MACHETE_AGENT_SEND_BUFFER_BYTES,
    invocations: Object.freeze({
      maxPerTool: e.MACHETE_INVOKE_MAX_PER_TOOL,
      maxPerHost: e.MACHETE_INVOKE_MAX_PER_HOST,
      maxOutputBytes: e.MACHETE_INVOKE_MAX_OUTPUT_BYTES,
      retentionHours: e.MACHETE_INVOCATION_RETENTION_HOURS,
    }),
    metrics: Object.freeze({ token: metricsToken, open: metricsToken === null && isLoopback(e.MACHETE_BIND) }),
  });
}

/** Addresses only this machine can reach (the default bind): there /metrics may be open. */
function isLoopback(bind: string): boolean {
  return bind === 'localhost' || bind === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bind);
}
