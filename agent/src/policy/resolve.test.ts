import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMounts, parseAllowedMounts } from '../../../protocol/src/index.ts';
import { resolveMounts, verifyPinned } from './resolve.ts';

// Real directories, files, symlinks and a listening unix socket under a temp root: the agent asks
// its own filesystem what a source names, and checks the real path (SECURITY-CASES 1, 3, 4).
const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'machete-resolve-')));
const allow = path.join(root, 'allow');
const ro = path.join(root, 'ro');
const p = (...s: string[]) => path.join(root, ...s);
let server: net.Server;

beforeAll(async () => {
  for (const d of ['allow/data/sub', 'ro/data', 'outside/secret', 'real-allow/x']) mkdirSync(p(d), { recursive: true });
  writeFileSync(p('allow/data/file.txt'), 'x');
  symlinkSync('/etc', p('allow/etc-link'));
  symlinkSync(p('allow/data'), p('allow/inner-link'));
  symlinkSync(p('outside'), p('allow/out-link'));
  symlinkSync(p('allow/out-link'), p('allow/chain1'));
  symlinkSync(p('allow/chain1'), p('allow/chain2'));
  symlinkSync('../outside', p('allow/relative-out'));
  symlinkSync(p('ro/data'), p('allow/to-ro'));
  symlinkSync('/dev/null', p('allow/null-link'));
  symlinkSync(p('allow/nowhere'), p('allow/dangling'));
  symlinkSync('/proc/self/root', p('allow/proc-root'));
  symlinkSync(p('real-allow'), p('allow-link'));
  server = net.createServer();
  await new Promise<void>((r) => server.listen(p('allow/data/app.sock'), r));
  symlinkSync(p('allow/data/app.sock'), p('allow/sock-link'));
});
afterAll(() => {
  server?.close();
  rmSync(root, { recursive: true, force: true });
});

const allowed = () => parseAllowedMounts(`${allow}:rw,${ro}:ro,${p('allow-link')}:ro`);
function resolve(source: string, readOnly = true) {
  const lexical = checkMounts([{ source, target: '/data', readOnly }], allowed(), '/var/run/docker.sock');
  if (!lexical.ok) return { ok: false as const, reason: lexical.reason };
  return resolveMounts(lexical.mounts, allowed(), '/var/run/docker.sock');
}

describe('resolveMounts on a real filesystem', () => {
  it.each([
    ['allow/data', 'allow/data'],
    ['allow/data/file.txt', 'allow/data/file.txt'],
    ['allow/inner-link', 'allow/data'],
    ['allow/inner-link/sub', 'allow/data/sub'],
    ['allow-link/x', 'real-allow/x'],
  ])('accepts %s and mounts its real path %s', (src, real) => {
    const r = resolve(p(src));
    expect(r).toMatchObject({ ok: true, mounts: [{ source: p(real), target: '/data', readOnly: true }] });
  });

  it.each([
    ['allow/etc-link', 'sensitive host path'],
    ['allow/etc-link/passwd', 'sensitive host path'],
    ['allow/out-link', 'outside the host allowlist'],
    ['allow/out-link/secret', 'outside the host allowlist'],
    ['allow/chain2', 'outside the host allowlist'],
    ['allow/chain2/secret', 'outside the host allowlist'],
    ['allow/relative-out', 'outside the host allowlist'],
    ['allow/data/app.sock', 'socket'],
    ['allow/sock-link', 'socket'],
    ['allow/null-link', 'device'],
    ['allow/proc-root', 'sensitive host path'],
    ['allow/dangling', 'does not exist'],
    ['allow/missing', 'does not exist'],
  ])('refuses %s (%s)', (src, why) => {
    const r = resolve(p(src));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain(why);
      expect(r.reason).not.toContain(root); // never echoes paths
    }
  });

  it('says the refusal came after resolving symlinks (the lexical check passed)', () => {
    expect(resolve(p('allow/sock-link'))).toMatchObject({ ok: false, reason: expect.stringContaining('after resolving symlinks') });
    expect(resolve(p('allow/etc-link'))).toMatchObject({ ok: false, reason: expect.stringContaining('after resolving symlinks') });
  });

  it('applies the mode of the entry the REAL path falls under: write through a symlink into an ro entry is refused', () => {
    expect(resolve(p('allow/to-ro'), true)).toMatchObject({ ok: true, mounts: [{ source: p('ro/data') }] });
    expect(resolve(p('allow/to-ro'), false)).toMatchObject({ ok: false, reason: expect.stringContaining('read-only allowlist entry') });
    expect(resolve(p('allow/data'), false)).toMatchObject({ ok: true });
  });

  it('refuses ".." before anything is resolved, whatever the directories contain', () => {
    for (const s of [`${allow}/../outside`, `${allow}/data/../../outside`, `${allow}/./data/../..`, `${allow}/out-link/..`]) {
      expect(resolve(s)).toMatchObject({ ok: false, reason: expect.stringContaining('".." segments') });
    }
  });
});

describe('verifyPinned (the race between resolution and mount)', () => {
  it('passes while nothing changed, and fails when a resolved directory is swapped for a symlink or replaced', () => {
    mkdirSync(p('allow/race/a'), { recursive: true });
    const r = resolve(p('allow/race/a'));
    if (!r.ok) throw new Error(r.reason);
    expect(verifyPinned(r.pins)).toBeUndefined();

    renameSync(p('allow/race'), p('allow/race-old'));
    symlinkSync(p('outside'), p('allow/race'));
    mkdirSync(p('outside/a'), { recursive: true });
    expect(verifyPinned(r.pins)).toMatch(/replaced by a symlink/);

    rmSync(p('allow/race'));
    mkdirSync(p('allow/race/a'), { recursive: true }); // same path, another directory
    expect(verifyPinned(r.pins)).toMatch(/changed after it was checked/);

    rmSync(p('allow/race'), { recursive: true });
    expect(verifyPinned(r.pins)).toMatch(/disappeared/);
  });
});
