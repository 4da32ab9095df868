import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Server, ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { createDb, type Database } from '../../../db/src/index.ts';
import { loadSigningKey } from './auth/keys.ts';
import type { TokenService } from './auth/tokens.ts';
import type { ApiConfig } from './config.ts';
import { createApp } from './http/app.ts';
import type { Deps } from './http/deps.ts';
import type { AgentHub } from './hub/hub.ts';
import { attachAgentEndpoint } from './hub/upgrade.ts';
import { createLogger, type Logger } from './logger.ts';
import { startHousekeeping } from './housekeeping.ts';
import { createPgChangeFeed } from './services/changeFeed.ts';
import { startLeadership, type Leadership } from './services/leadership.ts';
import { VERSION, wire } from './wiring.ts';

export { VERSION };
const ADMIN_TOKEN_TTL = 10 * 365 * 86_400;
const SWEEP_LOCK_KEY = 0x6d616368; // 'mach'
/** How often the leader lock is tried or, once held, proven: bounds a takeover after the holder dies. */
const LEADER_TICK_MS = 1_000;

export interface RunningServer {
  url: string;
  port: number;
  deps: Deps;
  database: Database;
  tokens: TokenService;
  hub: AgentHub;
  log: Logger;
  /** The scheduler/housekeeping leader lock (GET /api/health `leader`, metric machete_leader). */
  leadership: Leadership;
  mintJoinToken(ttlSeconds?: number): Promise<string>;
  close(): Promise<void>;
}

/** The only place that listens. Opens the database, writes first-start credentials, serves HTTP and agents. */
export async function startServer(config: ApiConfig, opts: { log?: Logger } = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logLevel);
  const { key, generated } = loadSigningKey(config.secretKey.file, config.secretKey.generateIfMissing);
  if (generated) log.info({ path: config.secretKey.file }, 'generated signing key');
  const secretsKey = config.secretsKeyFile ? loadSecretsKey(config.secretsKeyFile) : undefined;
  const database = await createDb(config.database.driver === 'postgres' ? { driver: 'postgres', url: config.database.url } : { driver: 'pglite', dataDir: config.database.dataDir });
  // On PostgreSQL, replicas share changes through LISTEN/NOTIFY; PGlite is one process.
  const pgFeed = database.driver === 'postgres' ? await createPgChangeFeed(database, (err) => log.error({ err }, 'change feed error')) : null;
  // Leadership is decided from the start; a change of leader starts housekeeping at once.
  let onLeader = () => {};
  const leadership = startLeadership({
    tryLock: () => database.tryAdvisoryLock(SWEEP_LOCK_KEY),
    intervalMs: LEADER_TICK_MS,
    onChange: (leader) => {
      log.info({ leader }, leader ? 'became the scheduler leader' : 'no longer the scheduler leader');
      if (leader) onLeader();
    },
  });
  const { deps, hub } = wire({ ...(pgFeed ? { feed: pgFeed } : {}), db: database.db, key, log, heartbeatMs: config.heartbeatMs, invocationLimits: config.invocations, limits: { ratePerSecond: config.http.ratePerSecond, rateBurst: config.http.rateBurst }, allowedImages: config.allowedImages, allowedMounts: config.allowedMounts, ...(secretsKey ? { secretsKey } : {}), agentSendBufferBytes: config.agentSendBufferBytes, metricsAccess: config.metrics, agentTokenTtlSeconds: config.agentTokenTtlSeconds, isLeader: () => leadership.isLeader() });
  const { tokens, events, services } = deps;
  await writeAdminToken(config, tokens, log);

  const app = createApp(deps);
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.bind, serverOptions: httpTimeouts(config) }, () => resolve(s as Server));
  });
  const wss = attachAgentEndpoint(server, { tokens, hosts: services.hosts, hub, events, log });
  const port = (server.address() as AddressInfo).port;
  const host = config.bind === '0.0.0.0' || config.bind === '::' ? '127.0.0.1' : config.bind;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, database: database.driver }, 'MACHETE control plane listening');

  const housekeeping = startHousekeeping({ leadership, hosts: services.hosts, invocations: services.invocations, connectedHosts: () => hub.connectedHosts(), heartbeatGraceSeconds: config.heartbeatGraceSeconds, log });
  onLeader = () => housekeeping.runNow();
  if (leadership.isLeader()) housekeeping.runNow();

  return {
    url,
    port,
    deps,
    database,
    tokens,
    hub,
    log,
    leadership,
    mintJoinToken: async (ttlSeconds = 600) => (await tokens.issue({ kind: 'join', ttlSeconds })).token,
    async close() {
      housekeeping.stop();
      leadership.stop();
      deps.metrics.stop();
      await hub.close();
      await events.stop().catch((err) => log.warn({ err }, 'could not write pending audit summaries'));
      wss.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections?.();
      });
      await pgFeed?.close().catch(() => {});
      await database.close();
    },
  };
}

/**
 * Slow or half-open clients (slowloris) are dropped: headers must arrive within
 * headersTimeout, the whole request within requestTimeout. Node checks these only
 * every connectionsCheckingInterval (default 30 s), so it follows the shorter timeout.
 */
function httpTimeouts(config: ApiConfig): ServerOptions {
  const { headersTimeoutMs, requestTimeoutMs } = config.http;
  return { headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeoutMs / 4))) };
}

/** MACHETE_SECRETS_KEY_FILE: the signing key's rules (exists, ≥ 32 bytes, 0600); never generated. */
function loadSecretsKey(file: string): Uint8Array {
  try {
    return loadSigningKey(file, false).key;
  } catch (err) {
    throw new Error(`MACHETE_SECRETS_KEY_FILE: ${(err as Error).message.replace('signing key', 'secrets key')}`);
  }
}

/** First start: an admin token in <data dir>/admin.token (0600). Its path is logged, never its contents. */
async function writeAdminToken(config: ApiConfig, tokens: TokenService, log: Logger): Promise<void> {
  const file = path.join(config.dataDir, 'admin.token');
  if (existsSync(file)) return;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const t = await tokens.issue({ kind: 'user', role: 'admin', name: 'admin', ttlSeconds: ADMIN_TOKEN_TTL });
  try {
    writeFileSync(file, `${t.token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Replicas sharing one data dir (compose) start together: one writes the file, the others void their token.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await tokens.revoke(t.id);
    return;
  }
  chmodSync(file, 0o600);
  log.info({ path: file }, 'wrote admin token');
}
