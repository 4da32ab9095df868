/**
 * Path primitives of the tool-spec policy. Pure string work (no node:path, no I/O) so the same
 * code runs in the control plane, the agent and a browser. Symlinks are the agent's business
 * (agent/src/policy/resolve.ts): here a path is only what its string says.
 */

/** One entry of MACHETE_ALLOWED_MOUNTS (`path:ro,path:rw,…`). */
export interface AllowedMount {
  /** Absolute, normalized, without a trailing slash. */
  path: string;
  /** True when the entry permits read-write mounts. */
  writable: boolean;
}

/** The segments of a path, without empty and `.` segments (`//` and `/./` name nothing). */
export const pathSegments = (p: string): string[] => p.split('/').filter((s) => s !== '' && s !== '.');

/**
 * Splits before normalizing: normalizing first would silently resolve `..` and hide the traversal
 * the policy must refuse (`/srv/allow/../../etc` is not "/etc, which happens to be refused").
 */
export const hasDotDot = (p: string): boolean => p.split('/').includes('..');

/**
 * `//`, `/./` and trailing slashes removed, as the engine will read the path. Callers refuse `..`
 * first; a `..` that still arrives is resolved lexically (never above `/`) rather than kept.
 */
export function normalizeAbsolute(p: string): string {
  const out: string[] = [];
  for (const seg of pathSegments(p)) {
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

/** True when normalized `p` equals `base` or lies under it, compared by whole path segments. */
export function isWithin(p: string, base: string): boolean {
  if (base === '/') return p.startsWith('/');
  return p === base || p.startsWith(`${base}/`);
}

/** Either path contains the other: mounting one exposes or shadows the other. */
export const overlaps = (a: string, b: string): boolean => isWithin(a, b) || isWithin(b, a);

/**
 * Why a raw path string cannot be a mount path or a working directory, or undefined. The reason
 * names `what`, never the path: paths come from clients and are not echoed.
 */
export function badPathReason(p: unknown, what: string): string | undefined {
  if (typeof p !== 'string' || p.length === 0) return `${what} is empty`;
  if (p.includes('\0')) return `${what} contains NUL`;
  if (!p.startsWith('/')) return `${what} is not an absolute path`;
  // The engine's legacy bind syntax splits on these; refused so no layer can ever re-split a path.
  if (/[:,]/.test(p)) return `${what} contains ":" or ","`;
  if (hasDotDot(p)) return `${what} contains ".." segments`;
  return undefined;
}

/**
 * Parses `MACHETE_ALLOWED_MOUNTS` (agent) or the fleet-wide control-plane list (API). Empty means
 * nothing may be mounted. Throws on the first bad entry, naming it (operator config, not client input).
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

/** The most specific allowlist entry covering `source`, so a narrower `ro` entry wins over a wider `rw` one. */
export function matchAllowed(source: string, allowed: readonly AllowedMount[]): AllowedMount | undefined {
  let best: AllowedMount | undefined;
  for (const a of allowed) {
    if (isWithin(source, a.path) && (!best || a.path.length > best.path.length)) best = a;
  }
  return best;
}
