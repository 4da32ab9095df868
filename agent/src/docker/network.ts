import type Docker from 'dockerode';
import { Labels } from '../../../protocol/src/index.ts';
import { statusOf } from './engineError.ts';
import { claimToolNetwork, inspectNetwork, type Release } from './networkSweep.ts';
import { TOOL_NETWORK_PREFIX } from './payload.ts';
import type { CreatePayload } from './port.ts';

type Deadline = () => AbortSignal;

/** The bridge gets no address: nothing answers at the gateway, so there is no way out, iptables or not. */
const NO_BRIDGE_ADDRESS = 'com.docker.network.bridge.inhibit_ipv4';

/**
 * `network: "isolated"` puts a tool's containers on a network of their own (payload.ts names it);
 * the engine does not create it on demand, so it is created here, before the container: an internal
 * bridge whose host side has no address. The tool's containers reach each other and nothing else.
 * `Internal` alone is not enough: the engine enforces it with iptables rules, absent when it runs with
 * --iptables=false, and then a container reaches the host's own services at the bridge address, its
 * default gateway (test/adversarial/resources.test.ts). A network of that name made otherwise is
 * refused, not joined. The network is labelled (managed, host, tool) so it is removed once unused
 * (networkSweep.ts); the caller calls the returned release once its container exists.
 */
export async function ensureToolNetwork(docker: Docker, payload: CreatePayload, deadline: Deadline): Promise<Release> {
  const name = payload.body.HostConfig.NetworkMode;
  if (typeof name !== 'string' || !name.startsWith(TOOL_NETWORK_PREFIX)) return () => {};
  // Held until the caller's container exists (networkSweep.ts): no removal may slip in between.
  const release = await claimToolNetwork(name);
  try {
    await ensure(docker, name, payload, deadline);
    return release;
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * The engine does not refuse a second network of a name (measured: two replicas and a warm sandbox
 * of one tool starting together made three `machete-net-<tool>`), and once a name matches several,
 * every create naming it fails as "ambiguous". So this process creates one name at a time, and the
 * duplicates another process (a second agent on the same engine) may still make are resolved the
 * same way by everyone: the oldest stays, the other MACHETE ones go.
 */
const ensuring = new Map<string, Promise<unknown>>();

async function ensure(docker: Docker, name: string, payload: CreatePayload, deadline: Deadline): Promise<void> {
  const run = (ensuring.get(name) ?? Promise.resolve()).catch(() => {}).then(() => ensureNow(docker, name, payload, deadline));
  const tail = run.catch(() => {});
  ensuring.set(name, tail);
  try {
    await run;
  } finally {
    if (ensuring.get(name) === tail) ensuring.delete(name);
  }
}

async function ensureNow(docker: Docker, name: string, payload: CreatePayload, deadline: Deadline): Promise<void> {
  let existing = await inspect(docker, name, deadline);
  if (existing === 'ambiguous') {
    await keepOldest(docker, name, deadline);
    existing = await inspect(docker, name, deadline);
  }
  if (existing === 'ambiguous') throw new Error(`network ${name} is ambiguous: several networks of that name, not all made by MACHETE`);
  if (existing) return assertInternal(name, existing);
  try {
    const labels = payload.body.Labels;
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      Internal: true,
      Attachable: false,
      Options: { [NO_BRIDGE_ADDRESS]: 'true' },
      Labels: { [Labels.managed]: 'true', [Labels.host]: labels[Labels.host] ?? '', [Labels.tool]: labels[Labels.tool] ?? '' },
      abortSignal: deadline(),
    } as Docker.NetworkCreateOptions);
  } catch (err) {
    // 409: created meanwhile, on engines that still refuse duplicate names; check what won.
    if (statusOf(err) !== 409) throw err;
  }
  await keepOldest(docker, name, deadline);
  const settled = await inspect(docker, name, deadline);
  if (!settled || settled === 'ambiguous') throw new Error(`network ${name} could not be created`);
  assertInternal(name, settled);
}

/** When several networks carry `name`, removes every MACHETE one but the oldest (ties: lowest id). */
async function keepOldest(docker: Docker, name: string, deadline: Deadline): Promise<void> {
  const listed = (await docker.listNetworks({ filters: { name: [name] }, abortSignal: deadline() } as Docker.NetworkListOptions)) as Array<{ Id: string; Name: string; Created?: string; Labels?: Record<string, string> | null }>;
  // The engine's name filter matches substrings.
  const same = listed.filter((n) => n.Name === name).sort((a, b) => (a.Created ?? '').localeCompare(b.Created ?? '') || a.Id.localeCompare(b.Id));
  for (const extra of same.slice(1)) {
    if (extra.Labels?.[Labels.managed] !== 'true') continue;
    await docker
      .getNetwork(extra.Id)
      .remove({ abortSignal: deadline() })
      .catch((err: unknown) => {
        // 404: another racer removed it; 403/409: something is on it already, the engine keeps it.
        const st = statusOf(err);
        if (st !== 404 && st !== 403 && st !== 409) throw err;
      });
  }
}

async function inspect(docker: Docker, name: string, deadline: Deadline): Promise<NetworkFacts | 'ambiguous' | null> {
  try {
    return await inspectNetwork<NetworkFacts>(docker, name, deadline);
  } catch (err) {
    if (statusOf(err) === 400 && /ambiguous/i.test((err as Error).message)) return 'ambiguous';
    throw err;
  }
}

interface NetworkFacts {
  Internal?: boolean;
  Options?: Record<string, string>;
}

function assertInternal(name: string, n: NetworkFacts): void {
  if (n.Internal !== true || n.Options?.[NO_BRIDGE_ADDRESS] !== 'true') {
    throw new Error(`refused by agent policy: network ${name} exists and is not internal without a host address`);
  }
}
