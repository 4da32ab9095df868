import type { ContainerAudit, HealthState, InstanceKind } from '../../../protocol/src/index.ts';
import type { PinnedSource } from '../policy/resolve.ts';
import type { SecretFiles } from './secrets.ts';

/** A MACHETE container as read back from the engine (labels are the only memory). */
export interface ObservedContainer {
  id: string;
  name: string;
  instanceId: string;
  tool: string;
  version: number;
  revision: number;
  kind: InstanceKind;
  /** Engine state: created | running | paused | restarting | removing | exited | dead */
  state: string;
  /** Known once the container has exited, else null. */
  exitCode: number | null;
  labels: Record<string, string>;
  /** The engine's health status of a running container with a health check; absent means none. */
  health?: HealthState;
  /** Set when an exited container was killed by the kernel at its memory limit (State.OOMKilled). */
  oomKilled?: boolean;
}

/** The engine's create body (Docker Engine API ContainerCreate), built only by payload.ts. */
export interface CreatePayload {
  name: string;
  body: Record<string, unknown> & { Labels: Record<string, string>; HostConfig: Record<string, unknown> };
  /** Files for the container's secrets volume, written by the port after create, before start. Never logged. */
  secrets?: SecretFiles;
  /** Resolved bind sources; the port refuses to hand over the container when one changed since. */
  pinnedSources?: PinnedSource[];
}

export interface EngineEvent {
  containerId: string;
  action: string;
  instanceId: string | undefined;
  /** The container's machete.kind label, when the engine reported it. */
  kind?: string;
}

export interface EngineInfo {
  cpus: number;
  memoryMb: number;
  /** Unix socket path or TCP URL the agent talks to; mounts of it are always refused. */
  endpoint: string;
}

/** Where run() keeps one stream's capped output (run.ts CappedOutput is one). */
export interface OutputBuffer {
  write(chunk: Uint8Array): void;
  readonly truncated: boolean;
  text(): string;
}

export interface LogOptions {
  follow: boolean;
  /** Last N lines only; null: all. */
  tail: number | null;
  /** Unix seconds; null: from the start. */
  since: number | null;
}

/** Receives a container's demultiplexed log output. */
export interface LogSink {
  data(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Called exactly once, when the engine stream is closed; null when it ended by itself (container stopped, backlog sent). */
  end(err: Error | null): void;
}

/** A running log read: pause/resume push back on the engine, close destroys the engine stream (then sink.end). */
export interface LogHandle {
  pause(): void;
  resume(): void;
  close(): void;
}

/** Run a container once (an invocation): attach, start, feed stdin, wait, capture, remove. */
export interface RunRequest {
  payload: CreatePayload;
  /** Written to stdin then closed; null closes stdin at once. */
  stdin: string | null;
  timeoutMs: number;
  /** Cap per stream: bytes past it are read and discarded (never buffered) and `truncated` is set. */
  maxOutputBytes: number;
  /** Aborting kills the container; the result says `cancelled`. */
  signal: AbortSignal;
  /** Buffers for the output (capped at maxOutputBytes by their owner), so it can be read while the tool runs. */
  output?: { stdout: OutputBuffer; stderr: OutputBuffer };
  /**
   * Called once with the result as soon as it is known, before the container is removed; run()
   * still resolves only after the removal. Lets the caller answer without waiting for cleanup.
   */
  onResult?: (r: RunResult) => void;
}

export interface RunResult {
  status: 'succeeded' | 'failed' | 'timeout' | 'cancelled';
  exitCode: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  durationMs: number;
  containerId: string | null;
  /** Set when the failure is not the process's own exit code (OOM kill, engine error). */
  reason: string | null;
}

/** The default process of the image a container was created from (Docker's ENTRYPOINT and CMD). */
export interface SandboxInfo {
  running: boolean;
  /** Set once the container has exited. */
  exitCode: number | null;
  entrypoint: string[];
  cmd: string[];
}

/** Run one process in a started warm sandbox (Engine exec): same stdin, cap, timeout and abort rules as RunRequest. */
export interface ExecRequest {
  containerId: string;
  /** The complete argv (entrypoint included); never parsed by a shell. */
  argv: string[];
  /** Numeric uid[:gid], as in the create payload. */
  user: string;
  stdin: string | null;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Aborting kills the sandbox; the result says `cancelled`. */
  signal: AbortSignal;
  /** As in RunRequest: buffers the caller reads while the process runs. */
  output?: { stdout: OutputBuffer; stderr: OutputBuffer };
}

/**
 * Everything the agent may ask of a Docker engine. No shell, no command strings:
 * implementations speak the Engine API (dockerode) or keep state in memory.
 */
export interface DockerPort {
  info(): Promise<EngineInfo>;
  /** Every container labelled machete.managed=true and machete.host=hostId, running or not. */
  list(hostId: string): Promise<ObservedContainer[]>;
  imageExists(ref: string): Promise<boolean>;
  /** Creates the container, fills its secrets and re-verifies its mount sources; returns its id. */
  create(payload: CreatePayload): Promise<string>;
  start(id: string): Promise<void>;
  /** Stops within `timeoutSeconds`, then kills. A container already stopped is not an error. */
  stop(id: string, timeoutSeconds: number): Promise<void>;
  /** Force-removes, with its secrets volume. A container already gone is not an error. */
  remove(id: string): Promise<void>;
  /** Removes secrets volumes and helpers left behind by a crash; returns how many. Optional: engines without secrets storage. */
  sweepSecrets?(hostId: string): Promise<number>;
  /** Removes this host's `network: "isolated"` tool networks that nothing has used for a while; returns how many. Optional. */
  sweepNetworks?(hostId: string): Promise<number>;
  /** Container lifecycle events for this host's managed containers; returns an unsubscribe. */
  events(hostId: string, onEvent: (e: EngineEvent) => void, onError: (err: Error) => void): () => void;
  /** Runs one container to completion and always removes it, whatever happens. */
  run(req: RunRequest): Promise<RunResult>;
  /** Reads a container's logs (json-file driver); never buffers the whole log. */
  logs(id: string, opts: LogOptions, sink: LogSink): LogHandle;
  /** State of a container and its image's default process (for the exec argv of a warm sandbox). */
  sandboxInfo(id: string): Promise<SandboxInfo>;
  /**
   * Runs one process in a running sandbox and captures it like run(). On timeout or abort the whole
   * sandbox is killed (never removed: its owner discards it). Resolves null when the engine refused
   * to start the process (sandbox gone or stopped): nothing ran, so the caller may run it cold.
   */
  exec(req: ExecRequest): Promise<RunResult | null>;
  /**
   * Read only: every container on the engine, MACHETE's or not, running or not, with the live
   * audit's findings (protocol/src/containerAudit.ts). The only call that looks past this host's labels.
   */
  auditContainers(): Promise<ContainerAudit[]>;
}
