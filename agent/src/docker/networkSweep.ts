import type Docker from 'dockerode';
import { Labels } from '../../../protocol/src/index.ts';
import { TOOL_NETWORK_PREFIX } from './payload.ts';
import { statusOf } from './engineError.ts';

type Deadline = () => AbortSignal;

/**
 * An invocation-only tool leaves its network unused between calls; the sweep keeps one used in the
 * last few minutes, so a steady trickle of invocations does not pay a network create each time.
 */
export const SWEEP_MIN_IDLE_MS = 5 * 60_000;

/**
 * A `network: "isolated"` tool's network (network.ts creates it) is removed once nothing of the tool
 * uses it: right after the last replica or warm sandbox on it is removed (DockerodePort.remove), and
 * by a periodic sweep (agent main) for what that missed — invocation-only tools, a crashed agent.
 *
 * The hazard is a create in flight: `ensureToolNetwork` found the network, the container is not made
 * yet, and a removal now would fail that create with "network not found". So every create claims the
 * network for as long as it runs, and a removal goes ahead only when, after reading the engine, no
 * claim is open, none was opened meanwhile (the epoch) and none started since the removal began (a
 * claim waits for it, then creates the network anew). The engine's own "has active endpoints"
 * refusal is the last guard and is not an error. Claims are per process: two agents sharing one engine
 * (a test topology) only remove networks labelled with their own host; a create that loses that race
 * fails once (a replica is retried on the next pass, an invocation reports the engine error).
 */
interface Claims {
  users: Map<string, number>;
  epoch: Map<string, number>;
  lastUsed: Map<string, number>;
  removing: Map<string, Promise<unknown>>;
}

/**
 * One per process, keyed by network name, whichever engine client asks: every create and removal of
 * the process goes through it. Two engines with a same-named tool network only make it more careful.
 */
const claimsOfProcess: Claims = { users: new Map(), epoch: new Map(), lastUsed: new Map(), removing: new Map() };

export type Release = () => void;

/** Holds `name` against removal until released; waits out a removal already under way. */
export async function claimToolNetwork(name: string): Promise<Release> {
  const c = claimsOfProcess;
  // Re-read after every wait, and nothing awaited between the last read and the count below.
  for (let r = c.removing.get(name); r; r = c.removing.get(name)) await r;
  c.users.set(name, (c.users.get(name) ?? 0) + 1);
  c.epoch.set(name, (c.epoch.get(name) ?? 0) + 1);
  c.lastUsed.set(name, Date.now());
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (c.users.get(name) ?? 1) - 1;
    if (left > 0) c.users.set(name, left);
    else c.users.delete(name);
    c.lastUsed.set(name, Date.now());
  };
}

export interface RemoveIfUnusedOptions {
  /** Only a network labelled as made for this host is removed (the container's or the sweeping agent's). */
  hostId: string;
  /** Kept when a create of this process used it more recently (default 0: removed as soon as unused). */
  minIdleMs?: number;
}

interface NetworkFacts {
  Id: string;
  Name: string;
  Labels?: Record<string, string> | null;
}

/** Removes tool network `name` when no container (running or not) is on it and no create claims it. True when removed. */
export async function removeToolNetworkIfUnused(docker: Docker, name: string, deadline: Deadline, opts: RemoveIfUnusedOptions): Promise<boolean> {
  if (!name.startsWith(TOOL_NETWORK_PREFIX)) return false;
  const c = claimsOfProcess;
  const minIdleMs = opts.minIdleMs ?? 0;
  const busy = () => (c.users.get(name) ?? 0) > 0 || c.removing.has(name) || (minIdleMs > 0 && Date.now() - (c.lastUsed.get(name) ?? 0) < minIdleMs);
  if (busy()) return false;
  const epoch = c.epoch.get(name) ?? 0;
  const net = await inspectNetwork(docker, name, deadline);
  // Someone else's network of that name (made by hand, or for another host) is not ours to remove.
  if (!net || net.Labels?.[Labels.managed] !== 'true' || net.Labels?.[Labels.host] !== opts.hostId) return false;
  if ((await containersOn(docker, net, deadline)) > 0 || busy() || (c.epoch.get(name) ?? 0) !== epoch) return false;
  const removal = removeById(docker, net.Id, deadline);
  c.removing.set(name, removal.catch(() => false));
  try {
    return await removal;
  } finally {
    c.removing.delete(name);
  }
}

/** Every tool network labelled for `hostId` that nothing uses (and no create of this process used within `minIdleMs`). Returns how many went. */
export async function sweepToolNetworks(docker: Docker, hostId: string, deadline: Deadline, minIdleMs = SWEEP_MIN_IDLE_MS): Promise<number> {
  const label = [`${Labels.managed}=true`, `${Labels.host}=${hostId}`];
  const nets = (await docker.listNetworks({ filters: { label }, abortSignal: deadline() } as Docker.NetworkListOptions)) as NetworkFacts[];
  let removed = 0;
  for (const n of nets) {
    if (await removeToolNetworkIfUnused(docker, n.Name, deadline, { hostId, minIdleMs })) removed++;
  }
  return removed;
}

/**
 * MACHETE containers on the network, running or not. Created and stopped ones count: the engine holds
 * no endpoint for them (it would let the network go) and their start would then fail. The engine's
 * `network` list filter misses them too (measured: a created container is not listed), so the
 * network is read from each container's HostConfig.NetworkMode, as the create body set it.
 */
async function containersOn(docker: Docker, net: NetworkFacts, deadline: Deadline): Promise<number> {
  const all = await docker.listContainers({ all: true, filters: { label: [`${Labels.managed}=true`] }, abortSignal: deadline() } as Docker.ContainerListOptions);
  return all.filter((ct) => {
    const mode = ct.HostConfig?.NetworkMode;
    return mode === net.Name || mode === net.Id || Object.prototype.hasOwnProperty.call(ct.NetworkSettings?.Networks ?? {}, net.Name);
  }).length;
}

/** The network named `name`, or null when there is none. */
export async function inspectNetwork<T = NetworkFacts>(docker: Docker, name: string, deadline: Deadline): Promise<T | null> {
  try {
    const net = docker.getNetwork(name);
    // dockerode accepts an abortSignal here; its types do not say so.
    const inspectWith = net.inspect.bind(net) as unknown as (o: { abortSignal: AbortSignal }) => Promise<T>;
    return await inspectWith({ abortSignal: deadline() });
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw err;
  }
}

async function removeById(docker: Docker, id: string, deadline: Deadline): Promise<boolean> {
  try {
    await docker.getNetwork(id).remove({ abortSignal: deadline() });
    return true;
  } catch (err) {
    // 404: gone already. 403/409: the engine still has an endpoint on it ("has active endpoints").
    const s = statusOf(err);
    if (s === 404 || s === 403 || s === 409) return false;
    throw err;
  }
}
