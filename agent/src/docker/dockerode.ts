import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import Docker from 'dockerode';
import { INSTANCE_KINDS, ImageSchema, Labels } from '../../../protocol/src/index.ts';
import type { HealthState, InstanceKind } from '../../../protocol/src/index.ts';
import type { CreatePayload, DockerPort, EngineEvent, ObservedContainer } from './port.ts';
import { auditEngine } from './auditContainers.ts';
import { streamLogs } from './logs.ts';
import { removeToolNetworkIfUnused, sweepToolNetworks } from './networkSweep.ts';
import { oomMarker } from './oom.ts';
import { execInSandbox, sandboxInfo } from './exec.ts';
import { createContainer, runContainer } from './run.ts';
import { removeSecretsVolume, secretsVolumeOf, sweepSecrets } from './secrets.ts';
import { statusOf } from './engineError.ts';

export interface DockerodePortOptions {
  socketPath?: string;
  host?: string;
  port?: number;
  tls?: { ca: Buffer; cert: Buffer; key: Buffer };
  /** Upper bound for one non-streaming engine request (stop adds its own grace time). Default 30 s. */
  requestTimeoutMs?: number;
}

const DEFAULT_SOCKET = '/var/run/docker.sock';
const DEFAULT_TIMEOUT_MS = 30_000;
/** An events line longer than this is garbage, not an event; it is dropped rather than buffered forever. */
const MAX_EVENT_LINE = 1024 * 1024;
/** Engine ids and names: hex ids or `[A-Za-z0-9][A-Za-z0-9_.-]*`. Anything else never reaches a URL path. */
const CONTAINER_REF_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Maps DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH values to port options (reads the cert files). */
export function dockerOptionsFrom(cfg: { dockerHost?: string; tlsVerify: boolean; certPath?: string | null }): DockerodePortOptions {
  const dockerHost = cfg.dockerHost?.trim() || `unix://${DEFAULT_SOCKET}`;
  if (dockerHost.startsWith('unix://')) {
    const socketPath = dockerHost.slice('unix://'.length);
    if (!path.posix.isAbsolute(socketPath)) throw new Error('DOCKER_HOST: unix socket path must be absolute');
    return { socketPath };
  }
  if (!dockerHost.startsWith('tcp://')) throw new Error('DOCKER_HOST: only unix:// and tcp:// endpoints are supported');
  let url: URL;
  try {
    url = new URL(dockerHost);
  } catch {
    throw new Error('DOCKER_HOST: not a valid tcp://host:port address');
  }
  if (!url.hostname || (url.pathname !== '' && url.pathname !== '/')) throw new Error('DOCKER_HOST: expected tcp://host:port');
  const host = url.hostname;
  const port = url.port ? Number(url.port) : cfg.tlsVerify ? 2376 : 2375;
  if (!cfg.tlsVerify) {
    // Plain TCP to an engine is root on that host for anyone on the path.
    if (!LOOPBACK_HOSTS.has(host)) throw new Error('DOCKER_HOST: a non-loopback tcp:// engine requires DOCKER_TLS_VERIFY=1');
    return { host, port };
  }
  if (!cfg.certPath) throw new Error('DOCKER_TLS_VERIFY needs DOCKER_CERT_PATH (a directory with ca.pem, cert.pem, key.pem)');
  const certPath = cfg.certPath;
  const read = (f: string) => readFileSync(path.join(certPath, f));
  return { host, port, tls: { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') } };
}

/** What a mount check compares against: the socket path, or a tcp:// URL. */
export function endpointOf(opts: DockerodePortOptions): string {
  if (opts.host) return `tcp://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port ?? (opts.tls ? 2376 : 2375)}`;
  return opts.socketPath ?? DEFAULT_SOCKET;
}

/** Exit code from a list `Status` such as "Exited (137) 3 seconds ago"; null when not exited. */
export function exitCodeFromStatus(status: string | undefined): number | null {
  const m = /^Exited \((-?\d+)\)/.exec(status ?? '');
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

const NON_NEG_INT_RE = /^(0|[1-9]\d{0,15})$/;

/**
 * The engine's health status (State.Health.Status) of a running container as its list entry shows
 * it: engines that put `Health` in the list are read directly, older ones only in `Status`
 * ("Up 3 seconds (health: starting)", "(healthy)", "(unhealthy)"), which saves an inspect per container and pass.
 */
export function healthFrom(c: Pick<Docker.ContainerInfo, 'State' | 'Status'> & { Health?: { Status?: unknown } }): HealthState {
  if (c.State !== 'running') return 'none';
  const direct = c.Health?.Status;
  if (direct === 'healthy' || direct === 'unhealthy' || direct === 'starting') return direct;
  const m = /\((healthy|unhealthy|health: starting)\)\s*$/.exec(c.Status ?? '');
  if (!m) return 'none';
  return m[1] === 'health: starting' ? 'starting' : (m[1] as HealthState);
}

/** Maps one list entry to an ObservedContainer; undefined when its labels are malformed. */
export function observedFrom(c: Docker.ContainerInfo, hostId: string): ObservedContainer | undefined {
  const labels = c.Labels ?? {};
  const tool = labels[Labels.tool];
  const instanceId = labels[Labels.instance];
  const kind = labels[Labels.kind];
  const version = labels[Labels.version];
  const revision = labels[Labels.revision];
  if (labels[Labels.managed] !== 'true' || labels[Labels.host] !== hostId) return undefined;
  if (!tool || !instanceId || !kind || !(INSTANCE_KINDS as readonly string[]).includes(kind)) return undefined;
  if (!version || !NON_NEG_INT_RE.test(version) || !revision || !NON_NEG_INT_RE.test(revision)) return undefined;
  const state = c.State ?? '';
  return {
    id: c.Id,
    name: (c.Names?.[0] ?? '').replace(/^\//, ''),
    instanceId,
    tool,
    version: Number(version),
    revision: Number(revision),
    kind: kind as InstanceKind,
    state,
    exitCode: state === 'exited' ? exitCodeFromStatus(c.Status) : null,
    labels: { ...labels },
    health: healthFrom(c),
  };
}

/**
 * Splits a byte stream into lines, across chunk boundaries and split UTF-8 sequences.
 * Returns the feed function; each complete non-empty line goes to `onLine`.
 */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  const decoder = new StringDecoder('utf8');
  let buf = '';
  return (chunk) => {
    buf += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl = buf.indexOf('\n');
    while (nl !== -1) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(line);
      nl = buf.indexOf('\n');
    }
    if (buf.length > MAX_EVENT_LINE) buf = '';
  };
}

/** One engine event line → EngineEvent, or undefined for lines that are not container events. */
export function engineEventFrom(line: string): EngineEvent | undefined {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!e || typeof e !== 'object') return undefined;
  const ev = e as { Type?: unknown; Action?: unknown; Actor?: { ID?: unknown; Attributes?: Record<string, unknown> } };
  if (ev.Type !== 'container' || typeof ev.Action !== 'string' || typeof ev.Actor?.ID !== 'string') return undefined;
  const instanceId = ev.Actor.Attributes?.[Labels.instance];
  const kind = ev.Actor.Attributes?.[Labels.kind];
  return { containerId: ev.Actor.ID, action: ev.Action, instanceId: typeof instanceId === 'string' ? instanceId : undefined, ...(typeof kind === 'string' ? { kind } : {}) };
}

function assertContainerRef(id: string): void {
  if (typeof id !== 'string' || !CONTAINER_REF_RE.test(id)) throw new Error('invalid container id');
}

function hostFilters(hostId: string): string[] {
  return [`${Labels.managed}=true`, `${Labels.host}=${hostId}`];
}

/** A DockerPort speaking the Engine API through dockerode: no shell, no CLI, no command strings. */
export function createDockerodePort(opts: DockerodePortOptions): DockerPort {
  const docker = opts.host
    ? new Docker({
        host: opts.host,
        port: opts.port ?? (opts.tls ? 2376 : 2375),
        protocol: opts.tls ? 'https' : 'http',
        ...(opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } : {}),
      })
    : new Docker({ socketPath: opts.socketPath ?? DEFAULT_SOCKET });
  const endpoint = endpointOf(opts);
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = (extraMs = 0) => AbortSignal.timeout(timeoutMs + extraMs);
  const markOomKilled = oomMarker(docker, deadline);

  return {
    async info() {
      // dockerode accepts an abortSignal here; its types do not say so.
      const infoWith = docker.info.bind(docker) as unknown as (o: { abortSignal: AbortSignal }) => Promise<unknown>;
      const i = (await infoWith({ abortSignal: deadline() })) as { NCPU?: number; MemTotal?: number };
      return { cpus: i.NCPU ?? 0, memoryMb: Math.floor((i.MemTotal ?? 0) / (1024 * 1024)), endpoint };
    },

    async list(hostId) {
      const all = await docker.listContainers({ all: true, filters: { label: hostFilters(hostId) }, abortSignal: deadline() });
      const observed = all.flatMap((c) => observedFrom(c, hostId) ?? []);
      await markOomKilled(observed);
      return observed;
    },

    async imageExists(ref) {
      // The ref becomes part of a URL path: only well-formed references get that far.
      if (!ImageSchema.safeParse(ref).success) throw new Error('invalid image reference');
      try {
        await docker.getImage(ref).inspect();
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return false;
        throw err;
      }
    },

    create: (payload: CreatePayload) => createContainer(docker, payload, deadline),

    async start(id) {
      assertContainerRef(id);
      try {
        await docker.getContainer(id).start({ abortSignal: deadline() });
      } catch (err) {
        if (statusOf(err) !== 304) throw err; // 304: already running
      }
    },

    async stop(id, timeoutSeconds) {
      assertContainerRef(id);
      const t = Math.max(0, Math.floor(timeoutSeconds));
      try {
        await docker.getContainer(id).stop({ t, abortSignal: deadline(t * 1000) });
      } catch (err) {
        const s = statusOf(err);
        if (s !== 304 && s !== 404) throw err;
      }
    },

    async remove(id) {
      assertContainerRef(id);
      // Its secrets volume goes with it: named volumes outlive their container otherwise.
      let volume: string | undefined;
      let info: Docker.ContainerInspectInfo | undefined;
      try {
        info = await docker.getContainer(id).inspect({ abortSignal: deadline() });
        volume = secretsVolumeOf(info.Mounts);
        await docker.getContainer(id).remove({ force: true, abortSignal: deadline() });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      if (volume) await removeSecretsVolume(docker, volume, deadline);
      // So does its tool's network, once nothing else is on it; a failure here is the periodic sweep's to retry.
      const network = info?.HostConfig.NetworkMode;
      const hostId = info?.Config.Labels?.[Labels.host];
      if (network && hostId) await removeToolNetworkIfUnused(docker, network, deadline, { hostId }).catch(() => false);
    },

    sweepSecrets(hostId) {
      return sweepSecrets(docker, hostId, deadline);
    },

    sweepNetworks(hostId) {
      return sweepToolNetworks(docker, hostId, deadline);
    },

    events(hostId, onEvent, onError) {
      return subscribeEvents(docker, hostId, onEvent, onError);
    },

    run(req) {
      // Only the short calls get `deadline`; attach and wait last as long as the tool runs.
      return runContainer(docker, req, deadline, timeoutMs);
    },

    sandboxInfo(id) {
      assertContainerRef(id);
      return sandboxInfo(docker, id, deadline);
    },

    exec(req) {
      assertContainerRef(req.containerId);
      return execInSandbox(docker, req, deadline, timeoutMs);
    },

    logs(id, logOpts, sink) {
      assertContainerRef(id);
      return streamLogs(docker, id, logOpts, sink);
    },

    auditContainers() {
      return auditEngine(docker, deadline);
    },
  };
}

/** Streams /events; onError fires at most once, when the stream fails or ends. The returned function destroys it. */
function subscribeEvents(
  docker: Docker,
  hostId: string,
  onEvent: (e: EngineEvent) => void,
  onError: (err: Error) => void,
): () => void {
  const abort = new AbortController();
  let stream: Readable | undefined;
  let done = false;
  const fail = (err: Error) => {
    if (done) return;
    done = true;
    abort.abort();
    stream?.destroy();
    onError(err);
  };
  const feed = lineSplitter((line) => {
    const e = engineEventFrom(line);
    if (e && !done) onEvent(e);
  });

  docker
    .getEvents({ filters: { type: ['container'], label: hostFilters(hostId) }, abortSignal: abort.signal } as Docker.GetEventsOptions)
    .then((s) => {
      stream = s as Readable;
      if (done) {
        stream.destroy();
        return;
      }
      stream.on('data', (chunk: Buffer | string) => {
        if (!done) feed(chunk);
      });
      stream.on('error', (err: Error) => fail(err));
      stream.on('end', () => fail(new Error('engine event stream ended')));
      stream.on('close', () => fail(new Error('engine event stream closed')));
    })
    .catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))));

  return () => {
    done = true;
    abort.abort();
    stream?.destroy();
  };
}
