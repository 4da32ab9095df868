import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import postgres from 'postgres';
import { loadAgentConfig } from '../../agent/src/config.ts';
import { startAgent, type RunningAgent } from '../../agent/src/main.ts';
import { loadConfig } from '../../apps/api/src/config.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { startServer, type RunningServer } from '../../apps/api/src/server.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

/** A fresh database on the run's PostgreSQL server, dropped by the returned function. */
export async function freshPostgresDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `machete_${Math.random().toString(36).slice(2, 10)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/**
 * A control plane and one agent in this process, on a real engine. Either can be
 * stopped and started again with the same data and state directories.
 */
export class TestCluster {
  server: RunningServer | null = null;
  agent: RunningAgent | null = null;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'machete-e2e-'));
  readonly docker: Docker;
  private port = 0;
  private admin = '';

  constructor(private readonly opts: { dockerSocket: string; databaseUrl?: string; env?: Record<string, string>; agentEnv?: Record<string, string> }) {
    this.docker = new Docker({ socketPath: opts.dockerSocket });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async startServer(): Promise<RunningServer> {
    if (!this.port) this.port = await freePort();
    const config = loadConfig({
      MACHETE_PORT: String(this.port),
      MACHETE_DATA_DIR: path.join(this.dir, 'data'),
      MACHETE_LOG_LEVEL: 'silent',
      MACHETE_HEARTBEAT_MS: '1000',
      ...(this.opts.databaseUrl ? { DATABASE_URL: this.opts.databaseUrl } : {}),
      ...this.opts.env,
    });
    this.server = await startServer(config, { log: createLogger('silent') });
    if (!this.admin) this.admin = (await this.server.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 3600 })).token;
    return this.server;
  }

  async stopServer(): Promise<void> {
    await this.server?.close();
    this.server = null;
  }

  async startAgent(): Promise<RunningAgent> {
    const joinToken = this.server ? await this.server.mintJoinToken() : undefined;
    const config = loadAgentConfig(
      { DOCKER_HOST: `unix://${this.opts.dockerSocket}`, MACHETE_LOG_LEVEL: 'silent', MACHETE_HOST_NAME: 'e2e-host', ...this.opts.agentEnv },
      { server: this.url, stateDir: path.join(this.dir, 'agent'), ...(joinToken ? { joinToken } : {}) },
    );
    this.agent = await startAgent(config, { log: createLogger('silent') });
    return this.agent;
  }

  async stopAgent(): Promise<void> {
    await this.agent?.stop();
    this.agent = null;
  }

  async api(method: string, p: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${token ?? this.admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async token(role: 'admin' | 'operator' | 'viewer' | 'invoker'): Promise<string> {
    return (await this.server!.tokens.issue({ kind: 'user', role, ttlSeconds: 3600 })).token;
  }

  /** MACHETE containers of this cluster's host on the engine. */
  async containers(all = true): Promise<Docker.ContainerInfo[]> {
    const hostId = this.agent?.hostId;
    const filters = { label: ['machete.managed=true', ...(hostId ? [`machete.host=${hostId}`] : [])] };
    return this.docker.listContainers({ all, filters });
  }

  async close(): Promise<void> {
    const hostId = this.agent?.hostId;
    await this.stopAgent().catch(() => {});
    await this.stopServer().catch(() => {});
    if (hostId) {
      const left = await this.docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`] } });
      await Promise.all(left.map((c) => this.docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls until `fn` returns a truthy value; fails with the last value seen. */
export async function waitFor<T>(fn: () => Promise<T>, what: string, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
}
