import { pino, type Logger } from 'pino';
import type { AgentConfig } from './config.ts';
import { AgentConnection } from './connection.ts';
import { enroll, readCredential, writeCredential, type Credential } from './credentials.ts';
import { createDockerodePort, dockerOptionsFrom, endpointOf } from './docker/dockerode.ts';
import { buildCreatePayload } from './docker/payload.ts';
import { agentProtectedPaths } from './policy/protected.ts';
import { nodeHostFs } from './policy/resolve.ts';
import type { DockerPort } from './docker/port.ts';
import { createInvocationRunner, type InvocationRunner } from './invoke/runner.ts';
import { createWarmPool, type WarmPool } from './invoke/warm.ts';
import { LogStreamer } from './logs/streamer.ts';
import { createReconciler, type Reconciler } from './reconcile/loop.ts';
import { createPassStats } from './reconcile/passStats.ts';
import { AuditResponder } from './audit/responder.ts';
import { startRenewal } from './renewal.ts';

export const AGENT_VERSION = '0.1.0';

export interface RunningAgent {
  hostId: string;
  reconciler: Reconciler;
  runner: InvocationRunner;
  warm: WarmPool;
  logs: LogStreamer;
  connection: AgentConnection;
  stop(): Promise<void>;
}

/** Starts an agent: credential (enrolling once if needed), engine port, reconcile loop, connection. */
export async function startAgent(config: AgentConfig, opts: { log?: Logger; port?: DockerPort } = {}): Promise<RunningAgent> {
  const log = opts.log ?? pino({ name: 'machete-agent', level: config.logLevel, redact: { paths: ['secrets', '*.secrets', '*.*.secrets', 'value', '*.value'], censor: '[redacted]' } });
  if (!config.server) throw new Error('MACHETE_SERVER is required');
  const server = config.server;
  const dockerOpts = dockerOptionsFrom(config.docker);
  const port = opts.port ?? createDockerodePort(dockerOpts);
  const engineEndpoint = endpointOf(dockerOpts);
  let cred = await obtainCredential(config, server, log);
  // The agent's own policy for every payload: mounts resolved on this host, its image allowlist.
  const policy = () => ({ allowedMounts: [...config.allowedMounts], allowedImages: config.allowedImages, engineEndpoint, protectedPaths: agentProtectedPaths(config), hostFs: nodeHostFs });

  const passStats = createPassStats();
  const reconciler = createReconciler({
    port,
    hostId: cred.hostId,
    build: (inst) => buildCreatePayload(inst, { ...policy(), hostId: cred.hostId }),
    onStatus: (changed, revision) => connection.sendStatus(changed, revision),
    extraReasons: () => warm.reasons(),
    onPass: (seconds, ok) => passStats.add(seconds, ok),
    log,
  });
  const warm = createWarmPool({
    port,
    hostId: cred.hostId,
    build: (inst, nameSuffix) => buildCreatePayload(inst, { ...policy(), hostId: cred.hostId, nameSuffix }),
    log,
  });
  const runner = createInvocationRunner({
    port,
    hostId: cred.hostId,
    warm,
    build: (req) =>
      buildCreatePayload(
        { id: req.id, tool: req.tool, version: req.version, kind: 'invocation', revision: 0, desired: 'running', spec: req.spec, ...(req.secrets ? { secrets: req.secrets } : {}) },
        { ...policy(), hostId: cred.hostId, extraArgs: req.args },
      ),
    onResult: (r) => void connection.sendInvocationResult(r),
    log,
  });
  const logs = new LogStreamer({ port, hostId: cred.hostId, live: (id) => runner.output(id), send: (f) => connection.sendLog(f), log });
  const audit = new AuditResponder({ port, send: (f) => connection.sendAuditReport(f), log });
  const wsUrl = `${server.replace(/^http/, 'ws')}/api/v1/agent/connect`;
  const connection: AgentConnection = new AgentConnection({
    url: wsUrl,
    token: () => cred.token,
    reconcileReport: () => passStats.take(),
    hello: async () => {
      const info = await port.info().catch(() => ({ cpus: 0, memoryMb: 0 }));
      return { agentVersion: AGENT_VERSION, hostName: config.hostName, labels: { ...config.labels }, capacity: { cpus: config.capacity.cpus ?? info.cpus, memoryMb: config.capacity.memoryMb ?? info.memoryMb } };
    },
    onDesired: (instances, revision) => {
      reconciler.setDesired(instances, revision, true);
      warm.setDesired(instances);
    },
    onDisconnected: () => {
      reconciler.markDisconnected();
      logs.closeAll();
    },
    onInvoke: (req) => runner.run(req),
    onCancel: (id) => runner.cancel(id),
    onLogs: (req) => logs.open(req),
    onLogCredit: (id, bytes) => logs.credit(id, bytes),
    onLogsCancel: (id) => logs.cancel(id),
    onAuditRequest: (id) => void audit.request(id),
    onUnauthorized: () => {
      // The credential was revoked or the server forgot us: enroll again if we still can.
      if (!config.joinToken) return log.error({}, 'agent credential refused and no join token to enroll again');
      void obtainCredential({ ...config }, server, log, true).then((c) => (cred = c)).catch((err) => log.error({ err: err.message }, 're-enrollment failed'));
    },
    log,
  });
  // Before connecting: a previous agent's invocation containers go first (and are reported failed once connected).
  await runner.start();
  reconciler.start();
  // Its first pass removes every warm container found: one may have served an invocation before a restart.
  warm.start();
  connection.start();
  // Secrets volumes and helpers a crash left behind, and tool networks nothing uses: swept at start, then every minute.
  const sweepSecrets = () => {
    void port.sweepSecrets?.(cred.hostId).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'secrets sweep failed'));
    void port.sweepNetworks?.(cred.hostId).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'network sweep failed'));
  };
  sweepSecrets();
  const secretsSweeper = setInterval(sweepSecrets, 60_000);
  secretsSweeper.unref();
  const renewal = startRenewal({ stateDir: config.stateDir, current: () => cred, renewed: (c) => (cred = c), log });
  log.info({ hostId: cred.hostId, engine: engineEndpoint }, 'agent started');
  return {
    hostId: cred.hostId,
    reconciler,
    runner,
    warm,
    logs,
    connection,
    async stop() {
      clearInterval(secretsSweeper);
      renewal.stop();
      logs.closeAll();
      // Invocations first, while the connection can still carry their `cancelled` results.
      await runner.stop();
      await warm.stop();
      connection.stop();
      await reconciler.stop();
    },
  };
}

async function obtainCredential(config: AgentConfig, server: string, log: Logger, force = false): Promise<Credential> {
  const existing = readCredential(config.stateDir);
  if (!force && existing && existing.server === server) return existing;
  if (!config.joinToken) throw new Error(`no host credential in ${config.stateDir} and no join token (MACHETE_JOIN_TOKEN or MACHETE_JOIN_TOKEN_FILE)`);
  for (let attempt = 0; ; attempt++) {
    try {
      const cred = await enroll(server, config.joinToken, config.hostName, { ...config.labels });
      writeCredential(config.stateDir, cred);
      log.info({ hostId: cred.hostId, stateDir: config.stateDir }, 'enrolled; credential saved');
      return cred;
    } catch (err) {
      const msg = (err as Error).message;
      if (msg.startsWith('enrollment refused (4')) throw err;
      const delay = Math.min(15_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      log.warn({ err: msg, retryInMs: Math.round(delay) }, 'cannot reach the control plane to enroll; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
