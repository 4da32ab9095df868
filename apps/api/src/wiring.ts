import type { Db } from '../../../db/src/index.ts';
import { createTokenService } from './auth/tokens.ts';
import type { Deps, HttpLimits, MetricsAccess } from './http/deps.ts';
import { AgentHub } from './hub/hub.ts';
import type { Logger } from './logger.ts';
import { createMetrics } from './metrics/metrics.ts';
import { createLocalChangeFeed, type ChangeFeed } from './services/changeFeed.ts';
import { createAuditService } from './services/audit.ts';
import { createDeploymentService } from './services/deployments.ts';
import { EventLog } from './services/events.ts';
import { createHostService } from './services/hosts.ts';
import { createInstanceService } from './services/instances.ts';
import { createInvocationService, type InvocationLimits } from './services/invocations.ts';
import { createLogService } from './services/logs.ts';
import { createToolService } from './services/tools.ts';
import { createSecretCipher } from './secrets/cipher.ts';
import { createSecretService } from './services/secrets.ts';
import { createSpecPolicy } from './services/specPolicy.ts';
import type { AllowedMount, ImagePattern } from '../../../protocol/src/index.ts';

export const VERSION = '0.1.0';

/** Builds every service once, around one database and one signing key. */
export const DEFAULT_INVOCATION_LIMITS: InvocationLimits = { maxPerTool: 32, maxPerHost: 16, maxOutputBytes: 1024 * 1024, retentionHours: 24 };

export function wire(opts: { db: Db; key: Uint8Array; log: Logger; heartbeatMs: number; feed?: ChangeFeed; invocationLimits?: InvocationLimits; limits?: HttpLimits; agentSendBufferBytes?: number; secretsKey?: Uint8Array; allowedImages?: readonly ImagePattern[] | null; allowedMounts?: readonly AllowedMount[] | null; metricsAccess?: MetricsAccess; agentTokenTtlSeconds?: number; isLeader?: () => boolean }): { deps: Deps; hub: AgentHub; feed: ChangeFeed } {
  const { db, log } = opts;
  const tokens = createTokenService(db, opts.key);
  const events = new EventLog(db);
  const feed = opts.feed ?? createLocalChangeFeed();
  const sd = { db, feed, events };
  const tools = createToolService(sd);
  // Secrets use their own key (a dedicated file, or HKDF of the signing key): never the JWT key itself.
  const secrets = createSecretService(sd, createSecretCipher(opts.secretsKey ?? opts.key));
  // The hub delivers invocations and the service completes them: each reaches the other lazily.
  let hub: AgentHub | null = null;
  const invocations = createInvocationService(sd, tools, opts.invocationLimits ?? DEFAULT_INVOCATION_LIMITS, () => hub!, log, (n) => secrets.valuesFor(n));
  const hostService = createHostService(sd, tokens, { ...(opts.agentTokenTtlSeconds ? { agentTokenTtlSeconds: opts.agentTokenTtlSeconds } : {}) });
  const services = {
    tools,
    invocations,
    deployments: createDeploymentService(sd),
    hosts: hostService,
    instances: createInstanceService(db),
    logs: createLogService(db, invocations, () => hub!),
    secrets,
    specPolicy: createSpecPolicy({ allowedImages: opts.allowedImages ?? null, allowedMounts: opts.allowedMounts ?? null, secrets }),
    audit: createAuditService({ hosts: hostService, events }, () => hub!),
  };
  const metrics = createMetrics({ db, events, connectedHosts: () => hub!.connectedHosts(), ...(opts.isLeader ? { isLeader: opts.isLeader } : {}) });
  hub = new AgentHub({ frames: metrics.frames, db, feed, events, hosts: services.hosts, instances: services.instances, log, heartbeatMs: opts.heartbeatMs, ...(opts.agentSendBufferBytes ? { maxBufferedBytes: opts.agentSendBufferBytes } : {}), completeInvocation: (h, r) => invocations.complete(h, r), secrets: (n) => secrets.valuesFor(n) });
  const theHub = hub;
  const deps: Deps = { db, log, tokens, events, services, connectedHosts: () => theHub.connectedHosts(), version: VERSION, metrics, ...(opts.isLeader ? { isLeader: opts.isLeader } : {}), ...(opts.metricsAccess ? { metricsAccess: opts.metricsAccess } : {}), ...(opts.limits ? { limits: opts.limits } : {}) };
  return { deps, hub: theHub, feed };
}
