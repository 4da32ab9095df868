import { createHash } from 'node:crypto';
import { DesiredInstanceSchema, Labels, canonicalJson, checkSpecPolicy, imageAllowed } from '../../../protocol/src/index.ts';
import type { AllowedMount, DesiredInstance, ImagePattern, ToolSpec } from '../../../protocol/src/index.ts';
import { resolveMounts, type HostFs, type PinnedSource } from '../policy/resolve.ts';
import { SECRETS_OF_LABEL, SECRETS_TARGET, secretsDigest, secretsVolumeName, type SecretFiles } from './secrets.ts';
import type { CreatePayload } from './port.ts';

/** The agent's own policy refused a spec; `reason` is safe to report (it never echoes spec values). */
export class PolicyRefusal extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`refused by agent policy: ${reason}`);
    this.name = 'PolicyRefusal';
    this.reason = reason;
  }
}

export interface PayloadContext {
  hostId: string;
  allowedMounts: readonly AllowedMount[];
  /** The engine endpoint (unix socket path or TCP URL); a mount exposing it is refused. */
  engineEndpoint: string;
  /** The agent's own secrets on the host (engine TLS certificates, state directory); a mount exposing them is refused. */
  protectedPaths?: readonly string[];
  /**
   * Appended to the command as separate argv entries, never parsed by a shell (an invocation's
   * args). A spec without `command` keeps the image's ENTRYPOINT and the args replace its CMD,
   * exactly like `docker run IMAGE ARGS…`.
   */
  extraArgs?: readonly string[];
  /**
   * Appended to a warm sandbox's container name: a slot is refilled while its used sandbox is still
   * being removed, so two containers of one slot exist for a moment and need distinct names.
   */
  nameSuffix?: string;
  /** MACHETE_ALLOWED_IMAGES of this agent; null or absent: any image. */
  allowedImages?: readonly ImagePattern[] | null;
  /**
   * The host filesystem: when given (always, in the agent), mount sources are resolved through
   * symlinks and checked again, and the REAL paths are mounted (policy/resolve.ts). Absent only in
   * pure unit tests of the lexical rules.
   */
  hostFs?: HostFs;
}

const MIB = 1024 * 1024;
const HOST_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_EXTRA_ARGS = 256;
const MAX_ARG_CHARS = 32_768;
export const TMPFS_OPTIONS = 'rw,noexec,nosuid,nodev,size=64m';
export const STOP_TIMEOUT_SECONDS = 10;
/**
 * What a warm sandbox runs while it waits: the image's `sleep` (a child of docker-init, PID 1).
 * Docker injects no program that can block (docker-init/tini only runs a child and exits with it),
 * so the image must provide `sleep` on PATH taking whole seconds (busybox, coreutils and every
 * distribution base have it; distroless/scratch images do not, and their tools run cold).
 * 2^31-1 s: for ever in practice, and within every sleep's argument range.
 */
export const WARM_IDLE_ENTRYPOINT = ['sleep'] as const;
export const WARM_IDLE_CMD = ['2147483647'] as const;
const NAME_SUFFIX_RE = /^[a-z0-9]{1,32}$/;

/** The version is part of the name so a rollout can start the new container before retiring the old. */
export const containerName = (tool: string, instanceId: string, version: number): string => `machete-${tool}-${instanceId}-v${version}`;
export const TOOL_NETWORK_PREFIX = 'machete-net-';
export const toolNetworkName = (tool: string): string => `${TOOL_NETWORK_PREFIX}${tool}`;

/** Value of the `machete.spec-hash` label: equal specs hash equal, whatever their key order. */
export function specHash(spec: ToolSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

function validExtraArgs(args: readonly string[] | undefined): readonly string[] {
  if (args === undefined) return [];
  if (!Array.isArray(args) || args.length > MAX_EXTRA_ARGS) throw new PolicyRefusal('too many arguments');
  for (const a of args) {
    if (typeof a !== 'string' || a.includes('\0') || a.length > MAX_ARG_CHARS) throw new PolicyRefusal('invalid argument');
  }
  return args;
}

function labelsFor(inst: DesiredInstance, hostId: string): Record<string, string> {
  return {
    [Labels.managed]: 'true',
    [Labels.tool]: inst.tool,
    [Labels.instance]: inst.id,
    [Labels.host]: hostId,
    [Labels.revision]: String(inst.revision),
    [Labels.kind]: inst.kind,
    [Labels.version]: String(inst.version),
    [Labels.specHash]: specHash(inst.spec),
  };
}

/**
 * Secure defaults, none of them negotiable by the spec. Fields left out on purpose:
 * MaskedPaths/ReadonlyPaths (setting them would replace Docker's defaults), bind
 * strings (structured Mounts only), PortBindings and CapAdd.
 */
function hostConfigFor(spec: ToolSpec, tool: string, kind: DesiredInstance['kind'], mounts: readonly Record<string, unknown>[]): Record<string, unknown> {
  const memory = spec.resources.memoryMb * MIB;
  return {
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges:true'],
    Privileged: false,
    ReadonlyRootfs: true,
    Tmpfs: { '/tmp': TMPFS_OPTIONS },
    Memory: memory,
    // Equal to Memory: no swap on top of the limit.
    MemorySwap: memory,
    NanoCpus: Math.max(1, Math.round(spec.resources.cpus * 1e9)),
    PidsLimit: spec.resources.pids,
    NetworkMode: spec.network === 'isolated' ? toolNetworkName(tool) : 'none',
    PublishAllPorts: false,
    LogConfig: logConfigFor(kind),
    // The agent decides restarts (it counts and reports them); Docker must not race it.
    RestartPolicy: { Name: 'no' },
    AutoRemove: false,
    Init: true,
    IpcMode: 'private',
    PidMode: '',
    CgroupnsMode: 'private',
    Mounts: mounts,
  };
}

/**
 * The spec policy the API ran, run again here with this host's allowlist and engine (mounts and
 * working directory, protocol/src/policy), then mount sources resolved through symlinks.
 */
function bindMounts(inst: DesiredInstance, ctx: PayloadContext): { mounts: Record<string, unknown>[]; pins: PinnedSource[] } {
  const guarded = ctx.protectedPaths ?? [];
  const checked = checkSpecPolicy(inst.spec, { allowedMounts: ctx.allowedMounts, engineEndpoint: ctx.engineEndpoint, protectedPaths: guarded });
  if (!checked.ok) throw new PolicyRefusal(checked.report);
  let list = checked.mounts;
  let pins: PinnedSource[] = [];
  if (ctx.hostFs) {
    const resolved = resolveMounts(list, ctx.allowedMounts, ctx.engineEndpoint, ctx.hostFs, guarded);
    if (!resolved.ok) throw new PolicyRefusal(resolved.reason);
    list = resolved.mounts;
    pins = resolved.pins;
  }
  const mounts = list.map((m) => ({
    Type: 'bind' as const,
    Source: m.source,
    Target: m.target,
    ReadOnly: m.readOnly,
    BindOptions: { Propagation: 'rprivate' as const },
  }));
  return { mounts, pins };
}

/**
 * The secrets of one container: a volume of its own, mounted read-only at /run/secrets, filled by
 * the port before start with one 0400 file per name owned by the tool's user. Only the names the
 * spec lists are mounted; a listed name without a value refuses the instance.
 */
function secretsFor(inst: DesiredInstance, containerName: string, hostId: string) {
  const names = inst.spec.secrets;
  if (!names.length) return undefined;
  const values = new Map((inst.secrets ?? []).map((v) => [v.name, v]));
  const files = new Map<string, string>();
  for (const [i, n] of names.entries()) {
    const v = values.get(n);
    if (!v) throw new PolicyRefusal(`secrets[${i}] is not available on this host`);
    files.set(n, v.value);
  }
  const [uid = 65534, gid = uid] = inst.spec.user.split(':').map(Number);
  const volume = secretsVolumeName(containerName);
  const payload: SecretFiles = { volume, uid, gid, files: [...files].map(([name, value]) => ({ name, value })) };
  const mount = { Type: 'volume', Source: volume, Target: SECRETS_TARGET, ReadOnly: true, VolumeOptions: { NoCopy: true, Labels: { [Labels.host]: hostId, [SECRETS_OF_LABEL]: containerName } } };
  return { payload, mount, digest: secretsDigest(names, inst.secrets)! };
}

/**
 * Replicas log to rotated json-file. An invocation logs nothing on the engine: the agent reads its
 * output from the attach stream (capped), and the engine's logger copies line by line in lockstep
 * with that stream, so a line flood (`yes`) would crawl at ~1 MB/s and burn daemon CPU and disk.
 */
function logConfigFor(kind: DesiredInstance['kind']): Record<string, unknown> {
  // A warm sandbox's idle process prints nothing, and exec output never reaches the log driver.
  if (kind === 'invocation' || kind === 'warm') return { Type: 'none', Config: {} };
  return { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } };
}

const NS_PER_SECOND = 1e9;

/**
 * The engine's Healthcheck for a replica whose spec has one: `CMD` with the argv as given, so the
 * engine execs it directly and no shell ever parses it (never `CMD-SHELL`). Invocations and warm
 * sandboxes get none: a run-once container has no "healthy", and an idle sandbox does not run the tool.
 */
export function healthcheckFor(spec: ToolSpec, kind: DesiredInstance['kind']): Record<string, unknown> | undefined {
  const hc = spec.healthCheck;
  if (!hc || kind !== 'replica') return undefined;
  return {
    Test: ['CMD', ...hc.command],
    Interval: hc.intervalSeconds * NS_PER_SECOND,
    Timeout: hc.timeoutSeconds * NS_PER_SECOND,
    Retries: hc.retries,
    StartPeriod: hc.startPeriodSeconds * NS_PER_SECOND,
  };
}

/**
 * Stdin wiring. An invocation is attached before start and fed once: OpenStdin + StdinOnce make the
 * engine close the tool's stdin when the agent half-closes its attach stream, while output keeps
 * flowing. Replicas get no stdin at all.
 */
function stdioFor(kind: DesiredInstance['kind']): Record<string, boolean> {
  const run = kind === 'invocation';
  return { AttachStdin: run, AttachStdout: run, AttachStderr: run, OpenStdin: run, StdinOnce: run, Tty: false };
}

/**
 * THE one place a tool spec becomes an Engine API create body. The spec is parsed
 * again here: the control plane is not trusted blindly. Pure apart from hashing.
 * Secrets become a read-only volume at /run/secrets (never env, labels or image layers); the
 * values travel in `payload.secrets` to the port, which writes them before start.
 */
export function buildCreatePayload(inst: DesiredInstance, ctx: PayloadContext): CreatePayload {
  const parsed = DesiredInstanceSchema.safeParse(inst);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new PolicyRefusal(`invalid instance at ${first?.path.join('.') || '(root)'}`);
  }
  if (!HOST_ID_RE.test(ctx.hostId)) throw new Error('buildCreatePayload: invalid host id');
  const valid = parsed.data;
  const spec = valid.spec;
  if (!imageAllowed(spec.image, ctx.allowedImages ?? null)) throw new PolicyRefusal('image is not allowed on this host (MACHETE_ALLOWED_IMAGES)');
  const cmd = [...(spec.command ?? []), ...validExtraArgs(ctx.extraArgs)];
  const { mounts, pins } = bindMounts(valid, ctx);
  const warm = valid.kind === 'warm';
  if (ctx.nameSuffix !== undefined && !NAME_SUFFIX_RE.test(ctx.nameSuffix)) throw new Error('buildCreatePayload: invalid name suffix');
  const baseName = containerName(valid.tool, valid.id, valid.version);
  const name = ctx.nameSuffix ? `${baseName}-${ctx.nameSuffix}` : baseName;
  const secrets = secretsFor(valid, name, ctx.hostId);
  const healthcheck = healthcheckFor(spec, valid.kind);

  const body: CreatePayload['body'] = {
    Image: spec.image,
    // A warm sandbox idles; the tool's own command runs later in it by exec (warm.ts builds that argv
    // from a payload of this same function). Everything else is the same locked-down body.
    ...(warm ? { Entrypoint: [...WARM_IDLE_ENTRYPOINT], Cmd: [...WARM_IDLE_CMD] } : cmd.length > 0 ? { Cmd: cmd } : {}),
    Env: Object.keys(spec.env)
      .sort()
      .map((k) => `${k}=${spec.env[k] ?? ''}`),
    User: spec.user,
    ...(spec.workingDir !== undefined ? { WorkingDir: spec.workingDir } : {}),
    Labels: { ...labelsFor(valid, ctx.hostId), ...(secrets ? { [Labels.secrets]: secrets.digest } : {}) },
    StopTimeout: STOP_TIMEOUT_SECONDS,
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    ...stdioFor(valid.kind),
    HostConfig: hostConfigFor(spec, valid.tool, valid.kind, secrets ? [...mounts, secrets.mount] : mounts),
  };
  return { name, body, ...(secrets ? { secrets: secrets.payload } : {}), ...(pins.length ? { pinnedSources: pins } : {}) };
}
