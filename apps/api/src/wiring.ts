import type { Db } from '../../../db/src/index.ts';
import { createTokenService } from './auth/tokens.ts';
import type { Deps } from './http/deps.ts';
import { AgentHub } from './hub/hub.ts';
import type { Logger } from './logger.ts';
import { createLocalChangeFeed, type ChangeFeed } from './services/changeFeed.ts';
import { createDeploymentService } from './services/deployments.ts';
import { EventLog } from './services/events.ts';
import { createHostService } from './services/hosts.ts';
import { createInstanceService } from './services/instances.ts';
import { createToolService } from './services/tools.ts';

export const VERSION = '0.1.0';

/** Builds every service once, around one database and one signing key. */
export function wire(opts: { db: Db; key: Uint8Array; log: Logger; heartbeatMs: number; feed?: ChangeFeed }): { deps: Deps; hub: AgentHub; feed: ChangeFeed } {
  const { db, log } = opts;
  const tokens = createTokenService(db, opts.key);
  const events = new EventLog(db);
  const feed = opts.feed ?? createLocalChangeFeed();
  const sd = { db, feed, events };
  const services = {
    tools: createToolService(sd),
    deployments: createDeploymentService(sd),
    hosts: createHostService(sd, tokens),
    instances: createInstanceService(db),
  };
  const hub = new AgentHub({ db, feed, events, hosts: services.hosts, instances: services.instances, log, heartbeatMs: opts.heartbeatMs });
  const deps: Deps = { db, log, tokens, events, services, connectedHosts: () => hub.connectedHosts(), version: VERSION };
  return { deps, hub, feed };
}
