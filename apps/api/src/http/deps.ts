import type { Db } from '../../../../db/src/index.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { AuditService } from '../services/audit.ts';
import type { DeploymentService } from '../services/deployments.ts';
import type { EventLog } from '../services/events.ts';
import type { HostService } from '../services/hosts.ts';
import type { InstanceService } from '../services/instances.ts';
import type { InvocationService } from '../services/invocations.ts';
import type { LogService } from '../services/logs.ts';
import type { ToolService } from '../services/tools.ts';
import type { SecretService } from '../services/secrets.ts';
import type { SpecPolicy } from '../services/specPolicy.ts';

/** What createApp needs; built once by server.ts (or by a test). */
export interface Deps {
  db: Db;
  log: Logger;
  tokens: TokenService;
  events: EventLog;
  services: {
    tools: ToolService;
    deployments: DeploymentService;
    hosts: HostService;
    instances: InstanceService;
    invocations: InvocationService;
    logs: LogService;
    secrets: SecretService;
    /** Image allowlist and secret existence, checked before a spec is stored. */
    specPolicy: SpecPolicy;
    /** Live container audit across the connected agents. */
    audit: AuditService;
  };
  /** Hosts with a live agent connection (health and metrics). */
  connectedHosts(): Set<string>;
  /** Whether this replica holds the housekeeping (scheduler) leader lock now; server.ts provides it. */
  isLeader?(): boolean;
  version: string;
  /** HTTP limits (defaults: DEFAULT_HTTP_LIMITS in app.ts). */
  limits?: HttpLimits;
  /** Prometheus instruments of this app (one registry per app). */
  metrics: Metrics;
  /** Who may read /metrics (default: anyone; server.ts opens it only on a loopback bind). */
  metricsAccess?: MetricsAccess;
}

export interface MetricsAccess {
  /** A dedicated scrape token (MACHETE_METRICS_TOKEN_FILE); an admin token is accepted too. */
  token: string | null;
  /** Without a token: true lets anyone scrape, false asks for an admin token. */
  open: boolean;
}

export interface HttpLimits {
  /** Sustained requests per second per token (per address without one); 0: off. */
  ratePerSecond: number;
  /** Requests allowed at once per token. */
  rateBurst: number;
}
