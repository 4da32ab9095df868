import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { loadAgentConfig } from '../../agent/src/config.ts';
import { startAgent, type RunningAgent } from '../../agent/src/main.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { startDockerd, type Dockerd } from '../harness/dockerd.ts';
import { ensureTestImage } from '../harness/image.ts';
import { freshPostgresDatabase, TestCluster, waitFor } from './cluster.ts';

/**
 * A TCP proxy on loopback between one agent and the control plane, so a test can cut
 * that agent's connection (both directions, at once) and restore it on the same port.
 */
export class CutProxy {
  port = 0;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(private readonly targetPort: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Refuses new connections and drops the open ones. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

export interface FleetHostOptions {
  name: string;
  labels: Record<string, string>;
  /** Overrides of the capacity the engine reports. */
  capacity?: { cpus: number; memoryMb: number };
}

/** One "host": its own dockerd, an agent in this process, and a proxy in front of the control plane. */
export class FleetHost {
  agent: RunningAgent | null = null;
  hostId = '';
  readonly docker: Docker;
  private readonly stateDir: string;

  private constructor(
    readonly opts: FleetHostOptions,
    readonly dockerd: Dockerd,
    readonly proxy: CutProxy,
  ) {
    this.docker = new Docker({ socketPath: dockerd.socketPath });
    this.stateDir = mkdtempSync(path.join(os.tmpdir(), `machete-fleet-${opts.name}-`));
  }

  static async start(opts: FleetHostOptions, serverPort: number): Promise<FleetHost> {
    const dockerd = await startDockerd({ name: `fleet-${opts.name}` });
    await ensureTestImage(dockerd.socketPath);
    const proxy = new CutProxy(serverPort);
    await proxy.start();
    return new FleetHost(opts, dockerd, proxy);
  }

  /** Starts (or restarts, with the credential in its state dir) this host's agent. */
  async startAgent(joinToken?: string): Promise<RunningAgent> {
    const env: Record<string, string> = {
      DOCKER_HOST: this.dockerd.dockerHost,
      MACHETE_LOG_LEVEL: 'silent',
      MACHETE_HOST_NAME: this.opts.name,
      MACHETE_HOST_LABELS: Object.entries(this.opts.labels).map(([k, v]) => `${k}=${v}`).join(','),
      ...(this.opts.capacity ? { MACHETE_CAPACITY_CPUS: String(this.opts.capacity.cpus), MACHETE_CAPACITY_MEMORY_MB: String(this.opts.capacity.memoryMb) } : {}),
    };
    const config = loadAgentConfig(env, { server: this.proxy.url, stateDir: this.stateDir, ...(joinToken ? { joinToken } : {}) });
    this.agent = await startAgent(config, { log: createLogger('silent') });
    this.hostId = this.agent.hostId;
    return this.agent;
  }

  async stopAgent(): Promise<void> {
    await this.agent?.stop();
    this.agent = null;
  }

  /** Running MACHETE containers of `tool` on this engine. */
  async running(tool: string): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ filters: { label: ['machete.managed=true', `machete.tool=${tool}`], status: ['running'] } });
  }

  async close(): Promise<void> {
    await this.stopAgent().catch(() => {});
    await this.proxy.stop().catch(() => {});
    await this.dockerd.stop().catch(() => {});
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/**
 * A control plane on a fresh PostgreSQL database with one FleetHost per entry of `hosts`, each
 * enrolled with its own join token, resolved once every host is ready. `close` tears it all down.
 */
export async function startFleetCluster(opts: { dockerSocket: string; pgUrl: string; env?: Record<string, string>; hosts: FleetHostOptions[] }): Promise<{ cluster: TestCluster; fleet: FleetHost[]; close(): Promise<void> }> {
  const db = await freshPostgresDatabase(opts.pgUrl);
  const cluster = new TestCluster({ dockerSocket: opts.dockerSocket, databaseUrl: db.url, ...(opts.env ? { env: opts.env } : {}) });
  const fleet: FleetHost[] = [];
  const close = async () => {
    await cluster.stopServer().catch(() => {});
    await Promise.all(fleet.map((h) => h.close()));
    await cluster.close();
    await db.drop();
  };
  const server = await cluster.startServer();
  fleet.push(...(await Promise.all(opts.hosts.map((h) => FleetHost.start(h, server.port)))));
  for (const h of fleet) await h.startAgent(await server.mintJoinToken());
  await waitFor(async () => {
    const hosts = (await cluster.api('GET', '/api/v1/hosts')).body as { status: string }[];
    return hosts.length === fleet.length && hosts.every((h) => h.status === 'ready');
  }, `${fleet.length} hosts ready`);
  return { cluster, fleet, close };
}
