import { normalizeAbsolute, pathSegments } from './policy/paths.ts';

/**
 * Engine and runtime control sockets, and the host paths that reach them: one list for the
 * static audit of compose files (apps/cli) and the live audit of containers (agent).
 * Mounting one of them, or a directory above one, is full control of the engine.
 */

/** Engine and runtime control sockets; `*` matches one path segment. /var/run forms are added below. */
const SOCKETS = [
  '/run/docker.sock',
  '/run/docker/containerd/containerd.sock',
  '/run/containerd/containerd.sock',
  '/run/containerd/containerd.sock.ttrpc',
  '/run/crio/crio.sock',
  '/run/podman/podman.sock',
  '/run/buildkit/buildkitd.sock',
  '/run/dockershim.sock',
  '/run/user/*/docker.sock',
  '/run/user/*/podman/podman.sock',
  '/run/user/*/containerd/containerd.sock',
];
const ALL_SOCKETS = [...SOCKETS, ...SOCKETS.map((s) => `/var${s}`)].map((s) => s.split('/').filter(Boolean));

/**
 * What node:path's posix.normalize does, minus the trailing slash, in plain string code: protocol/
 * imports zod only (DESIGN.md). A relative path keeps the `..` that climb out of it.
 */
function normalizeLexical(p: string): string {
  if (p.startsWith('/')) return normalizeAbsolute(p);
  const out: string[] = [];
  for (const seg of pathSegments(p)) {
    if (seg === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else out.push(seg);
  }
  return out.join('/') || '.';
}

/** Host paths as the engine sees them: `//`, `.`, `..` and trailing slashes resolved; /proc/PID/root/X is X. */
export function normalizeHostPath(p: string): string {
  const n = normalizeLexical(p.replace(/\\/g, '/'));
  // /proc/1/root is the host's root as pid 1 sees it (also /proc/self/root, /proc/thread-self/root).
  const m = /^\/proc\/[^/]+\/root(\/.*)?$/.exec(n);
  if (m) return m[1] ?? '/';
  return n;
}

/** Why a host path is an engine socket, or something containing one; null when it is neither. */
export function socketReason(source: string): string | null {
  if (/^\/\/\.\/pipe\/docker_engine/i.test(source) || /^\\\\\.\\pipe\\docker_engine/i.test(source)) return 'the Docker engine named pipe';
  if (!source.startsWith('/')) {
    return /\.sock$/i.test(source) ? 'a unix socket' : null;
  }
  const n = normalizeHostPath(source);
  const segs = n.split('/').filter(Boolean);
  for (const sock of ALL_SOCKETS) {
    if (segs.length > sock.length) continue;
    if (segs.every((s, i) => sock[i] === '*' || sock[i] === s)) {
      const full = `/${sock.join('/')}`;
      return segs.length === sock.length ? `the engine socket ${full}` : `a directory holding the engine socket ${full}`;
    }
  }
  if (/\.sock$/i.test(n) || /(^|\/)docker\.sock/i.test(n)) return 'a unix socket';
  return null;
}
