import path from 'node:path';

/** One entry of MACHETE_ALLOWED_MOUNTS (`path:ro,path:rw,…`). */
export interface AllowedMount {
  /** Absolute, normalized, without a trailing slash. */
  path: string;
  /** True when the entry permits read-write mounts. */
  writable: boolean;
}

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

export type MountCheck = ({ ok: true } & CheckedMount) | { ok: false; reason: string };
export type MountsCheck = { ok: true; mounts: CheckedMount[] } | { ok: false; reason: string };

/**
 * Host paths a tool never gets, whatever the allowlist says: the paths themselves,
 * anything under them, and any ancestor of them (mounting `/var` exposes `/var/run`,
 * so `/` is refused too).
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
/** Reserved for the tool's tmpfs (payload.ts); a bind there would collide with it. */
const RESERVED_TARGETS = ['/tmp'];

/** Engine/runtime state: a segment naming one of these is refused wherever it appears. */
const RUNTIME_SEGMENT_RE = /docker|containerd/i;

const segments = (p: string): string[] => p.split('/').filter((s) => s !== '');

/** True when normalized `p` equals `base` or lies under it, compared by whole path segments. */
export function isWithin(p: string, base: string): boolean {
  if (base === '/') return p.startsWith('/');
  return p === base || p.startsWith(`${base}/`);
}
/** Either path contains the other: mounting one exposes or shadows the other. */
const overlaps = (a: string, b: string): boolean => isWithin(a, b) || isWithin(b, a);

/** Splits before normalizing: `path.posix.normalize` would silently resolve `..`. */
const hasDotDot = (p: string): boolean => p.split('/').includes('..');

function normalizeAbsolute(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** Path of the engine's unix socket, or undefined for a TCP endpoint. */
function socketPathOf(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  if (endpoint.startsWith('unix://')) return normalizeAbsolute(endpoint.slice('unix://'.length));
  if (endpoint.startsWith('/')) return normalizeAbsolute(endpoint);
  return undefined;
}

function badPathReason(p: string, what: string): string | undefined {
  if (typeof p !== 'string' || p.length === 0) return `${what} is empty`;
  if (p.includes('\0')) return `${what} contains NUL`;
  if (!p.startsWith('/')) return `${what} is not an absolute path`;
  if (/[:,]/.test(p)) return `${what} contains ":" or ","`;
  if (hasDotDot(p)) return `${what} contains ".." segments`;
  return undefined;
}

/**
 * Parses `MACHETE_ALLOWED_MOUNTS`. Empty means nothing may be mounted.
 * Throws on the first bad entry, naming it (the value is operator config, not client input).
 */
export function parseAllowedMounts(s: string): AllowedMount[] {
  const out: AllowedMount[] = [];
  for (const raw of s.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const sep = entry.lastIndexOf(':');
    const p = sep === -1 ? entry : entry.slice(0, sep);
    const mode = sep === -1 ? '' : entry.slice(sep + 1);
    const fail = (why: string): never => {
      throw new Error(`MACHETE_ALLOWED_MOUNTS: entry "${entry}" ${why}; expected "/absolute/path:ro" or "/absolute/path:rw"`);
    };
    if (mode !== 'ro' && mode !== 'rw') fail('has no ":ro" or ":rw" mode');
    const why = badPathReason(p, 'path');
    if (why) fail(why);
    const normalized = normalizeAbsolute(p);
    if (normalized === '/') fail('allows the whole filesystem; list specific directories');
    if (out.some((a) => a.path === normalized)) fail('is listed twice');
    out.push({ path: normalized, writable: mode === 'rw' });
  }
  return out;
}

export function sourceRefusal(source: string, engineEndpoint: string | undefined): string | undefined {
  if (SENSITIVE_SOURCES.some((p) => overlaps(source, p))) return 'mount source is a sensitive host path';
  if (source.endsWith('.sock')) return 'mount source is a socket';
  if (segments(source).some((seg) => RUNTIME_SEGMENT_RE.test(seg))) return 'mount source is container runtime state';
  const sock = socketPathOf(engineEndpoint);
  if (sock && overlaps(source, sock)) return 'mount source exposes the engine socket';
  return undefined;
}

function targetRefusal(target: string): string | undefined {
  if (FORBIDDEN_TARGETS.some((t) => overlaps(target, t))) return 'mount target is a protected container path';
  if (RESERVED_TARGETS.includes(target)) return 'mount target is reserved';
  return undefined;
}

/** The most specific allowlist entry covering `source`, so a narrower `ro` entry wins over a wider `rw` one. */
export function matchAllowed(source: string, allowed: readonly AllowedMount[]): AllowedMount | undefined {
  let best: AllowedMount | undefined;
  for (const a of allowed) {
    if (isWithin(source, a.path) && (!best || a.path.length > best.path.length)) best = a;
  }
  return best;
}

/**
 * Decides one mount against the host's allowlist. Pure: no filesystem access.
 * Reasons never echo the requested paths (they come from clients).
 */
export function checkMount(mount: MountRequest, allowed: readonly AllowedMount[], engineEndpoint?: string): MountCheck {
  // Lexical only; resolve.ts then resolves symlinks on the host and checks the real path again.
  const badSource = badPathReason(mount.source, 'mount source');
  if (badSource) return { ok: false, reason: badSource };
  const badTarget = badPathReason(mount.target, 'mount target');
  if (badTarget) return { ok: false, reason: badTarget };

  const source = normalizeAbsolute(mount.source);
  const target = normalizeAbsolute(mount.target);
  const refusedSource = sourceRefusal(source, engineEndpoint);
  if (refusedSource) return { ok: false, reason: refusedSource };
  const refusedTarget = targetRefusal(target);
  if (refusedTarget) return { ok: false, reason: refusedTarget };

  const entry = matchAllowed(source, allowed);
  if (!entry) return { ok: false, reason: 'mount source is not in the host allowlist' };
  const readOnly = mount.readOnly !== false;
  if (!readOnly && !entry.writable) return { ok: false, reason: 'mount source is allowed read-only, write was requested' };
  return { ok: true, source, target, readOnly };
}

/** Checks every mount, then refuses duplicate or nested targets (their order would decide what the tool sees). */
export function checkMounts(mounts: readonly MountRequest[], allowed: readonly AllowedMount[], engineEndpoint?: string): MountsCheck {
  const ok: CheckedMount[] = [];
  for (const [i, m] of mounts.entries()) {
    const r = checkMount(m, allowed, engineEndpoint);
    if (!r.ok) return { ok: false, reason: `mounts[${i}]: ${r.reason}` };
    const clash = ok.findIndex((o) => overlaps(o.target, r.target));
    if (clash !== -1) {
      const what = ok[clash]?.target === r.target ? 'duplicates' : 'nests with';
      return { ok: false, reason: `mounts[${i}]: mount target ${what} the target of mounts[${clash}]` };
    }
    ok.push({ source: r.source, target: r.target, readOnly: r.readOnly });
  }
  return { ok: true, mounts: ok };
}
