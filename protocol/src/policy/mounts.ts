import { badPathReason, matchAllowed, normalizeAbsolute, overlaps, pathSegments, type AllowedMount } from './paths.ts';

/**
 * The lexical mount policy: ONE set of rules, run by the control plane on PUT /tools (400 naming
 * the field) and again by every agent before it builds a create payload (the control plane is not
 * trusted blindly). The agent then resolves symlinks on its own host and checks the real path
 * with `sourceRefusal` and `matchAllowed` again (agent/src/policy/resolve.ts).
 */

export interface MountRequest {
  source: string;
  target: string;
  readOnly: boolean;
}

/** A mount that passed policy, with normalized paths and the effective mode. */
export interface CheckedMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** The field of a mount that a refusal is about (the API names `mounts.<i>.<field>`). */
export type MountField = 'source' | 'target' | 'readOnly';

export type MountCheck = ({ ok: true } & CheckedMount) | { ok: false; field: MountField; reason: string };
/**
 * `reason` is `mounts[i]: <detail>` (what an agent reports); `field` is the dotted path the API
 * names (`mounts.1.target`). Neither echoes a requested path.
 */
export type MountsCheck = { ok: true; mounts: CheckedMount[] } | { ok: false; field: string; detail: string; reason: string };

/**
 * Host paths a tool never gets, whatever the allowlist says: the paths themselves, anything under
 * them, and any ancestor of them (mounting `/var` exposes `/var/run`, so `/` is refused too).
 */
const SENSITIVE_SOURCES = [
  '/proc',
  '/sys',
  '/dev',
  '/etc',
  '/boot',
  '/run',
  '/var/run',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/usr',
  '/bin',
  '/sbin',
  '/root',
  '/var/lib/docker',
  '/var/lib/containerd',
];

/**
 * Container paths a mount may not cover, sit under, or shadow as an ancestor
 * (so `/` and `/run`, which holds `/run/secrets`, are refused too).
 */
const FORBIDDEN_TARGETS = ['/proc', '/sys', '/dev', '/run/secrets'];
/** Reserved for the tool's tmpfs (the agent's create payload); a bind there would collide with it. */
const RESERVED_TARGETS = ['/tmp'];

/** Engine/runtime state: a segment naming one of these is refused wherever it appears. */
const RUNTIME_SEGMENT_RE = /docker|containerd/i;

/** Path of the engine's unix socket, or undefined for a TCP endpoint. */
function socketPathOf(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  if (endpoint.startsWith('unix://')) return normalizeAbsolute(endpoint.slice('unix://'.length));
  if (endpoint.startsWith('/')) return normalizeAbsolute(endpoint);
  return undefined;
}

/**
 * Why a normalized host path may never be mounted, or undefined. Also run by the agent on the
 * REAL path after resolving symlinks. `engineEndpoint` is the agent's own engine and
 * `protectedPaths` its own secrets (engine TLS certificates, its credential directory): both are
 * known only to the agent, and refused with their ancestors like the sensitive paths.
 */
export function sourceRefusal(source: string, engineEndpoint?: string, protectedPaths: readonly string[] = []): string | undefined {
  if (SENSITIVE_SOURCES.some((p) => overlaps(source, p))) return 'mount source is a sensitive host path';
  if (/\.sock$/i.test(source)) return 'mount source is a socket';
  if (pathSegments(source).some((seg) => RUNTIME_SEGMENT_RE.test(seg))) return 'mount source is container runtime state';
  const sock = socketPathOf(engineEndpoint);
  if (sock && overlaps(source, sock)) return 'mount source exposes the engine socket';
  if (protectedPaths.some((p) => p.startsWith('/') && overlaps(source, normalizeAbsolute(p)))) return "mount source exposes the agent's credentials";
  return undefined;
}

function targetRefusal(target: string): string | undefined {
  if (FORBIDDEN_TARGETS.some((t) => overlaps(target, t))) return 'mount target is a protected container path';
  if (RESERVED_TARGETS.includes(target)) return 'mount target is reserved';
  return undefined;
}

/**
 * Decides one mount. Pure: no filesystem access. `allowed` is the allowlist to compare with, or
 * null when the caller has none (the control plane without MACHETE_ALLOWED_MOUNTS: the hosts decide;
 * the structural and sensitive-path rules apply either way). An empty array allows nothing.
 */
export function checkMount(mount: MountRequest, allowed: readonly AllowedMount[] | null, engineEndpoint?: string, protectedPaths: readonly string[] = []): MountCheck {
  const badSource = badPathReason(mount.source, 'mount source');
  if (badSource) return { ok: false, field: 'source', reason: badSource };
  const badTarget = badPathReason(mount.target, 'mount target');
  if (badTarget) return { ok: false, field: 'target', reason: badTarget };

  const source = normalizeAbsolute(mount.source);
  const target = normalizeAbsolute(mount.target);
  const refusedSource = sourceRefusal(source, engineEndpoint, protectedPaths);
  if (refusedSource) return { ok: false, field: 'source', reason: refusedSource };
  const refusedTarget = targetRefusal(target);
  if (refusedTarget) return { ok: false, field: 'target', reason: refusedTarget };

  const readOnly = mount.readOnly !== false;
  if (allowed !== null) {
    const entry = matchAllowed(source, allowed);
    if (!entry) return { ok: false, field: 'source', reason: 'mount source is not in the host allowlist' };
    if (!readOnly && !entry.writable) return { ok: false, field: 'readOnly', reason: 'mount source is allowed read-only, write was requested' };
  }
  return { ok: true, source, target, readOnly };
}

/** Checks every mount, then refuses duplicate or nested targets (their order would decide what the tool sees). */
export function checkMounts(mounts: readonly MountRequest[], allowed: readonly AllowedMount[] | null, engineEndpoint?: string, protectedPaths: readonly string[] = []): MountsCheck {
  const refuse = (i: number, field: MountField, detail: string): MountsCheck => ({ ok: false, field: `mounts.${i}.${field}`, detail, reason: `mounts[${i}]: ${detail}` });
  const ok: CheckedMount[] = [];
  for (const [i, m] of mounts.entries()) {
    const r = checkMount(m, allowed, engineEndpoint, protectedPaths);
    if (!r.ok) return refuse(i, r.field, r.reason);
    const clash = ok.findIndex((o) => overlaps(o.target, r.target));
    if (clash !== -1) {
      const what = ok[clash]?.target === r.target ? 'duplicates' : 'nests with';
      return refuse(i, 'target', `mount target ${what} the target of mounts[${clash}]`);
    }
    ok.push({ source: r.source, target: r.target, readOnly: r.readOnly });
  }
  return { ok: true, mounts: ok };
}
