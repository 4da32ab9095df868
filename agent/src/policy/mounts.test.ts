// The lexical rules live in protocol/src/policy (one policy for the API and the agent); these are the agent-side tables.
import { describe, expect, it } from 'vitest';
import { checkMount, checkMounts, isWithin, parseAllowedMounts } from '../../../protocol/src/index.ts';

const ENDPOINT = '/tmp/engine/docker.sock';
const allowed = parseAllowedMounts('/srv/allow:ro,/srv/data:rw,/srv/data/frozen:ro,/tmp/engine-data:rw,/home/u/work:rw');
const mount = (source: string, readOnly = true, target = '/data') => ({ source, target, readOnly });

describe('parseAllowedMounts', () => {
  it('returns no entries for an empty or blank value', () => {
    expect(parseAllowedMounts('')).toEqual([]);
    expect(parseAllowedMounts('  ')).toEqual([]);
  });

  it('parses modes, normalizes paths and strips trailing slashes', () => {
    expect(parseAllowedMounts(' /srv/a/:ro, /srv//b/./c//:rw,')).toEqual([
      { path: '/srv/a', writable: false },
      { path: '/srv/b/c', writable: true },
    ]);
  });

  it.each([
    ['/srv/a', 'no ":ro" or ":rw" mode'],
    ['/srv/a:rx', 'no ":ro" or ":rw" mode'],
    ['srv/a:ro', 'not an absolute path'],
    [':ro', 'empty'],
    ['/srv/../etc:ro', '".." segments'],
    ['/srv/a:b:ro', 'contains ":" or ","'],
    ['/srv/\0a:ro', 'NUL'],
    ['/:rw', 'whole filesystem'],
    ['/srv/a:ro,/srv/a/:rw', 'listed twice'],
  ])('throws on %j, naming the entry (%s)', (value, why) => {
    expect(() => parseAllowedMounts(value)).toThrow(why);
    const bad = value.split(',').at(-1)?.trim() ?? value;
    expect(() => parseAllowedMounts(value)).toThrow(`"${bad}"`);
  });
});

describe('isWithin', () => {
  it.each([
    ['/srv/allow', '/srv/allow', true],
    ['/srv/allow/x', '/srv/allow', true],
    ['/srv/allowed', '/srv/allow', false],
    ['/srv', '/srv/allow', false],
    ['/anything', '/', true],
  ])('%s within %s → %s', (p, base, want) => {
    expect(isWithin(p, base)).toBe(want);
  });
});

describe('checkMount sources', () => {
  it.each([
    // allowlist, compared by segment
    ['/srv/allow', true, 'ok'],
    ['/srv/allow/sub/dir', true, 'ok'],
    ['/srv/allow/', true, 'ok'],
    ['/srv//allow/./sub', true, 'ok'],
    ['/srv/allowed', true, 'not in the host allowlist'],
    ['/srv/allow-other', true, 'not in the host allowlist'],
    ['/srv', true, 'not in the host allowlist'],
    ['/opt/other', true, 'not in the host allowlist'],
    // traversal and malformed
    ['/srv/allow/../../etc', true, '".." segments'],
    ['/srv/allow/..', true, '".." segments'],
    ['/srv/allow/sub/../x', true, '".." segments'],
    ['srv/allow', true, 'not an absolute path'],
    ['', true, 'empty'],
    ['/srv/allow/a\0b', true, 'NUL'],
    ['/srv/allow/a:b', true, 'contains ":" or ","'],
    ['/srv/allow/a,b', true, 'contains ":" or ","'],
    // sensitive paths, their children and their ancestors
    ['/', true, 'sensitive'],
    ['/proc', true, 'sensitive'],
    ['/proc/1/root', true, 'sensitive'],
    ['/sys/fs/cgroup', true, 'sensitive'],
    ['/dev', true, 'sensitive'],
    ['/etc/shadow', true, 'sensitive'],
    ['/boot', true, 'sensitive'],
    ['/run', true, 'sensitive'],
    ['/var/run', true, 'sensitive'],
    ['/var', true, 'sensitive'],
    ['/lib/modules', true, 'sensitive'],
    ['/usr/bin', true, 'sensitive'],
    ['/root/.ssh', true, 'sensitive'],
    ['/var/lib/docker', true, 'sensitive'],
    ['/var/lib/docker/volumes/x', true, 'sensitive'],
    ['/var/lib', true, 'sensitive'],
    ['/var/lib/containerd', true, 'sensitive'],
    // sockets and runtime state wherever they are
    ['/srv/data/docker.sock', true, 'socket'],
    ['/srv/data/x.sock', true, 'socket'],
    ['/srv/data/docker', true, 'runtime state'],
    ['/srv/data/containerd/state', true, 'runtime state'],
    ['/home/u/work/.docker', true, 'runtime state'],
    // the engine's own socket, and any directory holding it
    ['/tmp/engine', true, 'engine socket'],
    ['/tmp/engine/docker.sock', true, 'socket'],
    ['/tmp', true, 'engine socket'],
    ['/tmp/engine-data', true, 'ok'],
    // read-only vs read-write
    ['/srv/allow', false, 'read-only'],
    ['/srv/data', false, 'ok'],
    ['/srv/data/sub', false, 'ok'],
    ['/srv/data/frozen', false, 'read-only'],
    ['/srv/data/frozen/x', false, 'read-only'],
    ['/srv/data/frozen', true, 'ok'],
  ])('%j (readOnly %s) → %s', (source, readOnly, want) => {
    const r = checkMount(mount(source, readOnly), allowed, ENDPOINT);
    if (want === 'ok') expect(r).toMatchObject({ ok: true });
    else {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(want);
    }
  });

  it('grants write only where asked and permitted, and returns normalized paths', () => {
    expect(checkMount(mount('/srv/data//x/', false, '/out/'), allowed, ENDPOINT)).toEqual({ ok: true, source: '/srv/data/x', target: '/out', readOnly: false });
    expect(checkMount(mount('/srv/data', true), allowed, ENDPOINT)).toMatchObject({ ok: true, readOnly: true });
  });

  it('refuses everything when the allowlist is empty', () => {
    expect(checkMount(mount('/srv/allow'), [], ENDPOINT)).toMatchObject({ ok: false });
  });

  it('accepts a unix:// endpoint and ignores a tcp:// one', () => {
    const tmp = parseAllowedMounts('/tmp/e:rw');
    expect(checkMount(mount('/tmp/e'), tmp, 'unix:///tmp/e/d.socket')).toMatchObject({ ok: false, reason: expect.stringContaining('engine socket') });
    expect(checkMount(mount('/tmp/e'), tmp, 'tcp://127.0.0.1:2376')).toMatchObject({ ok: true });
  });

  it('never echoes the requested path in a reason', () => {
    const r = checkMount(mount('/srv/secret-name-xyz'), allowed, ENDPOINT);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).not.toContain('secret-name-xyz');
  });
});

describe('checkMount targets', () => {
  it.each([
    ['/data', 'ok'],
    ['/data/', 'ok'],
    ['/tmp/in', 'ok'],
    ['/run/other', 'ok'],
    ['data', 'not an absolute path'],
    ['/data/../etc', '".." segments'],
    ['/a:b', 'contains ":" or ","'],
    ['/', 'protected'],
    ['/proc', 'protected'],
    ['/proc/sys', 'protected'],
    ['/sys', 'protected'],
    ['/dev/shm', 'protected'],
    ['/run/secrets', 'protected'],
    ['/run/secrets/api-key', 'protected'],
    ['/run', 'protected'],
    ['/tmp', 'reserved'],
  ])('%j → %s', (target, want) => {
    const r = checkMount(mount('/srv/allow', true, target), allowed, ENDPOINT);
    if (want === 'ok') expect(r).toMatchObject({ ok: true });
    else {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(want);
    }
  });
});

describe('checkMounts', () => {
  it('accepts disjoint mounts and returns them normalized', () => {
    const r = checkMounts([mount('/srv/allow/a', true, '/a'), mount('/srv/data', false, '/ab/')], allowed, ENDPOINT);
    expect(r).toEqual({
      ok: true,
      mounts: [
        { source: '/srv/allow/a', target: '/a', readOnly: true },
        { source: '/srv/data', target: '/ab', readOnly: false },
      ],
    });
  });

  it('accepts no mounts', () => {
    expect(checkMounts([], [], ENDPOINT)).toEqual({ ok: true, mounts: [] });
  });

  it.each([
    [['/data', '/data'], 'duplicates'],
    [['/data', '/data/'], 'duplicates'],
    [['/data', '/data/sub'], 'nests with'],
    [['/data/sub', '/data'], 'nests with'],
  ])('refuses targets %j (%s)', (targets, want) => {
    const r = checkMounts(targets.map((t) => mount('/srv/allow', true, t)), allowed, ENDPOINT);
    expect(r).toEqual({ ok: false, field: 'mounts.1.target', detail: `mount target ${want} the target of mounts[0]`, reason: `mounts[1]: mount target ${want} the target of mounts[0]` });
  });

  it('names the index of the refused mount', () => {
    const r = checkMounts([mount('/srv/allow', true, '/a'), mount('/etc', true, '/b')], allowed, ENDPOINT);
    expect(r).toEqual({ ok: false, field: 'mounts.1.source', detail: 'mount source is a sensitive host path', reason: 'mounts[1]: mount source is a sensitive host path' });
  });
});
