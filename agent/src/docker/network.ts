import type Docker from 'dockerode';
import { Labels } from '../../../protocol/src/index.ts';
import { TOOL_NETWORK_PREFIX } from './payload.ts';
import type { CreatePayload } from './port.ts';

type Deadline = () => AbortSignal;

const statusOf = (err: unknown): number | undefined => {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
};

/** The bridge gets no address: nothing answers at the gateway, so there is no way out, iptables or not. */
const NO_BRIDGE_ADDRESS = 'com.docker.network.bridge.inhibit_ipv4';

/**
 * `network: "isolated"` puts a tool's containers on a network of their own (payload.ts names it);
 * the engine does not create it on demand, so it is created here, before the container: an internal
 * bridge whose host side has no address. The tool's containers reach each other and nothing else.
 * `Internal` alone is not enough: the engine enforces it with iptables rules, absent when it runs with
 * --iptables=false, and then a container reaches the host's own services at the bridge address, its
 * default gateway (test/adversarial/resources.test.ts). A network of that name made otherwise is
 * refused, not joined.
 */
export async function ensureToolNetwork(docker: Docker, payload: CreatePayload, deadline: Deadline): Promise<void> {
  const name = payload.body.HostConfig.NetworkMode;
  if (typeof name !== 'string' || !name.startsWith(TOOL_NETWORK_PREFIX)) return;
  const existing = await inspect(docker, name, deadline);
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
    // 409: created meanwhile (two replicas of one tool start together); check what won.
    if (statusOf(err) !== 409) throw err;
    const raced = await inspect(docker, name, deadline);
    if (!raced) throw err;
    assertInternal(name, raced);
  }
}

async function inspect(docker: Docker, name: string, deadline: Deadline): Promise<NetworkFacts | null> {
  try {
    // dockerode accepts an abortSignal here; its types do not say so.
    const net = docker.getNetwork(name);
    const inspectWith = net.inspect.bind(net) as unknown as (o: { abortSignal: AbortSignal }) => Promise<NetworkFacts>;
    return await inspectWith({ abortSignal: deadline() });
  } catch (err) {
    if (statusOf(err) === 404) return null;
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
