import fs from 'node:fs';
import path from 'node:path';
import { matchAllowed, sourceRefusal, type AllowedMount, type CheckedMount } from '../../../protocol/src/index.ts';

/**
 * Symlink resolution of mount sources on the agent's host (DESIGN.md: "compared against the
 * allowlist after resolving symlinks").
 *
 * The lexical check (mounts.ts) sees only the string a client sent. Here the agent asks its own
 * filesystem what that string names: `realpath` follows every symlink, then the real path is
 * checked again (sensitive paths, runtime state, engine socket, allowlist and its mode), and
 * sockets, devices and FIFOs are refused whatever their path. The create payload then carries the
 * REAL path, never the client's string, so a symlink that existed at resolution time cannot
 * redirect the mount.
 *
 * The race: after resolution, someone who can write inside the allowlisted tree could replace a
 * directory of the real path with a symlink before the engine mounts it. Each resolved source is
 * therefore pinned: its device and inode, and the rule that no component of the real path is a
 * symlink. The port verifies the pin after the container is created, as the last step before it
 * is started (docker/prepare.ts), and removes the container on any difference. What remains is the
 * window between that check and the runtime's mount(2) (milliseconds), which no Engine API call can
 * close (that needs a mount by file descriptor); docs/security.md says so.
 */

/** Identity of a resolved mount source, checked again before start. */
export interface PinnedSource {
  path: string;
  dev: number;
  ino: number;
}

export type ResolveResult = { ok: true; mounts: CheckedMount[]; pins: PinnedSource[] } | { ok: false; reason: string };

/** The filesystem calls resolution needs (node:fs by default; a test may count or fake them). */
export interface HostFs {
  realpathSync(p: string): string;
  lstatSync(p: string): fs.Stats;
}
export const nodeHostFs: HostFs = { realpathSync: (p) => fs.realpathSync.native(p), lstatSync: (p) => fs.lstatSync(p) };

/** Allowlist entries resolved too: `/data -> /mnt/disk1/data` must still allow what lies under it. */
function resolvedAllowlist(allowed: readonly AllowedMount[], hfs: HostFs): AllowedMount[] {
  const out: AllowedMount[] = [];
  for (const a of allowed) {
    try {
      out.push({ path: hfs.realpathSync(a.path), writable: a.writable });
    } catch {
      // A missing entry allows nothing that exists.
    }
  }
  return out;
}

function kindRefusal(st: fs.Stats): string | undefined {
  if (st.isSocket()) return 'mount source is a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'mount source is a device';
  if (st.isFIFO()) return 'mount source is a FIFO';
  if (!st.isDirectory() && !st.isFile()) return 'mount source is not a file or directory';
  return undefined;
}

/** Protected paths as given and, where they exist, resolved: a symlink to the certs is refused too. */
function resolvedProtected(paths: readonly string[], hfs: HostFs): string[] {
  const out = [...paths];
  for (const p of paths) {
    try {
      out.push(hfs.realpathSync(p));
    } catch {
      // Missing: the lexical path is still refused.
    }
  }
  return out;
}

/** Resolves one lexically checked mount; reasons never echo paths (they come from clients). */
function resolveOne(m: CheckedMount, allowed: AllowedMount[], engineEndpoint: string | undefined, hfs: HostFs, protectedPaths: readonly string[]): { mount: CheckedMount; pin: PinnedSource } | string {
  let real: string;
  try {
    real = hfs.realpathSync(m.source);
  } catch {
    return 'mount source does not exist on this host';
  }
  const st = hfs.lstatSync(real);
  const refused = kindRefusal(st) ?? sourceRefusal(real, engineEndpoint, protectedPaths);
  if (refused) return `${refused} (after resolving symlinks)`;
  const entry = matchAllowed(real, allowed);
  if (!entry) return 'mount source resolves outside the host allowlist';
  if (!m.readOnly && !entry.writable) return 'mount source resolves to a read-only allowlist entry, write was requested';
  return { mount: { ...m, source: real }, pin: { path: real, dev: st.dev, ino: st.ino } };
}

/** Resolves every mount (already lexically checked) against the host's filesystem. */
export function resolveMounts(mounts: readonly CheckedMount[], allowed: readonly AllowedMount[], engineEndpoint: string | undefined, hfs: HostFs = nodeHostFs, protectedPaths: readonly string[] = []): ResolveResult {
  if (!mounts.length) return { ok: true, mounts: [], pins: [] };
  const real = resolvedAllowlist(allowed, hfs);
  const guarded = resolvedProtected(protectedPaths, hfs);
  const out: CheckedMount[] = [];
  const pins: PinnedSource[] = [];
  for (const [i, m] of mounts.entries()) {
    const r = resolveOne(m, real, engineEndpoint, hfs, guarded);
    if (typeof r === 'string') return { ok: false, reason: `mounts[${i}]: ${r}` };
    out.push(r.mount);
    pins.push(r.pin);
  }
  return { ok: true, mounts: out, pins };
}

/**
 * True when every pinned source is still the object that was checked: no component of its path
 * is a symlink now (lstat, never following), and the final object has the same device and inode.
 * Returns the reason otherwise.
 */
export function verifyPinned(pins: readonly PinnedSource[], hfs: HostFs = nodeHostFs): string | undefined {
  for (const [i, pin] of pins.entries()) {
    let cur = '/';
    let st: fs.Stats | undefined;
    try {
      for (const seg of pin.path.split('/').filter(Boolean)) {
        cur = path.posix.join(cur, seg);
        st = hfs.lstatSync(cur);
        if (st.isSymbolicLink()) return `mounts[${i}]: mount source was replaced by a symlink after it was checked`;
      }
      st ??= hfs.lstatSync('/');
    } catch {
      return `mounts[${i}]: mount source disappeared after it was checked`;
    }
    if (st.dev !== pin.dev || st.ino !== pin.ino) return `mounts[${i}]: mount source changed after it was checked`;
  }
  return undefined;
}
