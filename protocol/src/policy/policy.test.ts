import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../toolSpec.ts';
import { checkMount, checkMounts, checkSpecPolicy, normalizeAbsolute, parseAllowedMounts, workingDirRefusal } from '../index.ts';

// The one tool-spec policy (SECURITY-CASES 1, 2, 4–10, 12), as the API runs it (allowlist null or
// fleet-wide) and as the agent runs it (its own allowlist). Agent-side tables: agent/src/policy/mounts.test.ts.
const allow = parseAllowedMounts('/srv/allow:rw,/srv/ro:ro');
const m = (source: string, target = '/data', readOnly = true) => ({ source, target, readOnly });

describe('normalizeAbsolute (no node:path in protocol)', () => {
  it.each(['/', '//', '/a', '/a/', '/a//b/./c/', '/./a', '/a/.', '/a/b/../c', '/..', '/../a', '/a/../../b', '///a///'])('%j matches path.posix.normalize', (p) => {
    const want = path.posix.normalize(p);
    expect(normalizeAbsolute(p)).toBe(want.length > 1 ? want.replace(/\/+$/, '') : want);
  });
});

describe('escaping sources (Nomad-style table), allowlist /srv/allow', () => {
  it.each([
    ['/srv/allow/../../etc', 'source', '".." segments'],
    ['/srv/allow/..', 'source', '".." segments'],
    ['/srv/allow/./../x', 'source', '".." segments'],
    ['/srv/allow/sub/../../../', 'source', '".." segments'],
    ['/..', 'source', '".." segments'],
    ['data', 'source', 'not an absolute path'],
    ['./x', 'source', 'not an absolute path'],
    ['', 'source', 'empty'],
    ['/srv/allow/x:/etc:rw', 'source', '":" or ","'],
    ['/srv/allow/a,b', 'source', '":" or ","'],
    ['/srv/allow/a\0b', 'source', 'NUL'],
    ['/srv/allowed', 'source', 'not in the host allowlist'],
    ['/srv', 'source', 'not in the host allowlist'],
  ])('%j is refused naming %s (%s)', (source, field, why) => {
    const r = checkMount(m(source), allow);
    expect(r).toMatchObject({ ok: false, field });
    if (!r.ok) expect(r.reason).toContain(why);
  });

  it.each(['/srv/allow', '/srv/allow/', '/srv//allow/./x', '/srv/allow/...', '/srv/allow/..hidden', '/srv/allow/%2e%2e', '/srv/allow/a..b'])(
    '%j stays inside and is allowed',
    (source) => {
      expect(checkMount(m(source), allow)).toMatchObject({ ok: true });
    },
  );
});

describe('always-refused sources, with or without an allowlist', () => {
  const everything = parseAllowedMounts('/srv:rw,/home:rw,/opt:rw,/tmp:rw,/var/lib/x:rw');
  it.each([
    '/', '/proc', '/proc/1/root', '/sys', '/sys/fs/cgroup', '/dev', '/dev/sda', '/etc', '/etc/shadow', '/boot', '/lib', '/lib/modules', '/usr', '/usr/bin',
    '/root', '/root/.ssh', '/run', '/run/user/1000', '/var/run', '/var/run/docker.sock', '/var', '/var/lib/docker', '/var/lib/containerd/io',
    '/srv/x.sock', '/srv/X.SOCK', '/tmp/docker.sock', '/srv/containerd/state', '/home/u/.docker', '/opt/Docker/x',
  ])('%j', (source) => {
    for (const allowed of [null, everything]) {
      const r = checkMount(m(source), allowed);
      expect(r, String(allowed)).toMatchObject({ ok: false, field: 'source' });
    }
  });

  it('refuses the agent engine socket and any directory above it when the endpoint is known', () => {
    const list = parseAllowedMounts('/srv/e:rw');
    expect(checkMount(m('/srv/e'), list, 'unix:///srv/e/api.socket')).toMatchObject({ ok: false, reason: expect.stringContaining('engine socket') });
    expect(checkMount(m('/srv/e'), list)).toMatchObject({ ok: true });
  });
});

describe("the agent's own secrets (case 4: engine certs, credential directory)", () => {
  const list = parseAllowedMounts('/srv:rw');
  const guarded = ['/srv/agent/certs', '/srv/state/'];
  it.each(['/srv/agent/certs', '/srv/agent/certs/key.pem', '/srv/agent', '/srv', '/srv/state', '/srv//state/./cred'])('%j is refused even inside the allowlist', (source) => {
    expect(checkMount(m(source), list, undefined, guarded)).toMatchObject({ ok: false, field: 'source', reason: "mount source exposes the agent's credentials" });
  });

  it.each(['/srv/agent/other', '/srv/statefile', '/srv/agent/certs2'])('%j is allowed', (source) => {
    expect(checkMount(m(source), list, undefined, guarded)).toMatchObject({ ok: true });
  });

  it('ignores a relative protected path instead of matching everything', () => {
    expect(checkMount(m('/srv/x'), list, undefined, ['certs'])).toMatchObject({ ok: true });
  });
});

describe('targets', () => {
  it.each([
    ['/', 'protected'], ['/proc', 'protected'], ['/proc/sys', 'protected'], ['/sys', 'protected'], ['/dev', 'protected'], ['/dev/shm', 'protected'],
    ['/run/secrets', 'protected'], ['/run/secrets/key', 'protected'], ['/run', 'protected'], ['/tmp', 'reserved'], ['/d/../etc', '".."'],
    ['data', 'absolute'], ['', 'empty'], ['/a\0', 'NUL'], ['/a:b', '":"'],
  ])('%j is refused (%s)', (target, why) => {
    const r = checkMount(m('/srv/allow', target), null);
    expect(r).toMatchObject({ ok: false, field: 'target' });
    if (!r.ok) expect(r.reason).toContain(why);
  });

  it.each([[['/data', '/data/sub'], 'nests with'], [['/data/sub', '/data'], 'nests with'], [['/data', '/data/'], 'duplicates'], [['/a', '/b', '/a'], 'duplicates']])(
    'refuses targets %j naming the later mount (%s)',
    (targets, why) => {
      const r = checkMounts(targets.map((t) => m('/srv/allow', t)), null);
      const i = targets.length - 1;
      expect(r).toMatchObject({ ok: false, field: `mounts.${i}.target`, reason: expect.stringMatching(new RegExp(`^mounts\\[${i}\\]: mount target ${why}`)) });
    },
  );
});

describe('the allowlist and its modes (case 10)', () => {
  it('forces read-only by default and grants write only on an rw entry', () => {
    expect(checkMount(m('/srv/allow/x'), allow)).toMatchObject({ ok: true, readOnly: true });
    expect(checkMount(m('/srv/allow/x', '/d', false), allow)).toMatchObject({ ok: true, readOnly: false });
    expect(checkMount(m('/srv/ro/x', '/d', true), allow)).toMatchObject({ ok: true, readOnly: true });
  });

  it('refuses write on an ro entry, naming readOnly', () => {
    expect(checkMount(m('/srv/ro/x', '/d', false), allow)).toMatchObject({ ok: false, field: 'readOnly', reason: expect.stringContaining('read-only') });
    expect(checkMounts([m('/srv/allow', '/a'), m('/srv/ro', '/b', false)], allow)).toMatchObject({ ok: false, field: 'mounts.1.readOnly' });
  });

  it('skips only the allowlist comparison when there is no allowlist (null); an empty one allows nothing', () => {
    expect(checkMount(m('/srv/anything', '/d', false), null)).toMatchObject({ ok: true, readOnly: false });
    expect(checkMount(m('/srv/anything'), [])).toMatchObject({ ok: false, field: 'source' });
  });
});

describe('working directory (case 12)', () => {
  it.each(['/proc', '/proc/self', '/proc/1/root', '/proc/', '//proc', '/./proc/x', '/sys', '/sys/kernel', '/dev', '/dev/shm'])('%j is refused', (wd) => {
    expect(workingDirRefusal(wd)).toBe('working directory is a protected container path');
  });

  it.each([['/work/../proc', '".."'], ['work', 'absolute'], ['', 'empty'], ['/w\0', 'NUL'], ['/a:b', '":"']])('%j is refused (%s)', (wd, why) => {
    expect(workingDirRefusal(wd)).toContain(why);
  });

  it.each([undefined, '/', '/work', '/procfs', '/device', '/tmp', '/run/secrets'])('%j is allowed', (wd) => {
    expect(workingDirRefusal(wd)).toBeUndefined();
  });
});

describe('checkSpecPolicy', () => {
  const spec = (over: object) => ToolSpecSchema.parse({ image: 'machete/busybox:test', ...over });

  it('returns the normalized mounts of an acceptable spec', () => {
    const r = checkSpecPolicy(spec({ mounts: [{ source: '/srv//allow/x/', target: '/in/' }], workingDir: '/in' }), { allowedMounts: allow });
    expect(r).toEqual({ ok: true, mounts: [{ source: '/srv/allow/x', target: '/in', readOnly: true }] });
  });

  it.each([
    [{ mounts: [{ source: '/srv/allow', target: '/a' }, { source: '/etc', target: '/b' }] }, 'mounts.1.source'],
    [{ mounts: [{ source: '/srv/allow', target: '/proc' }] }, 'mounts.0.target'],
    [{ mounts: [{ source: '/srv/ro', target: '/a', readOnly: false }] }, 'mounts.0.readOnly'],
    [{ workingDir: '/proc/self' }, 'workingDir'],
  ])('refuses %j naming %s, with a report for the agent', (over, field) => {
    const r = checkSpecPolicy(spec(over), { allowedMounts: allow });
    expect(r).toMatchObject({ ok: false, field });
    if (!r.ok) expect(r.report).toMatch(field.startsWith('mounts.') ? /^mounts\[\d\]: / : /^working directory/);
  });

  it('never echoes a requested path in a reason', () => {
    for (const over of [{ mounts: [{ source: '/srv/secret-xyz', target: '/a' }] }, { mounts: [{ source: '/etc/secret-xyz', target: '/a' }] }, { workingDir: '/proc/secret-xyz' }]) {
      const r = checkSpecPolicy(spec(over), { allowedMounts: allow });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(`${r.field} ${r.reason} ${r.report}`).not.toContain('secret-xyz');
    }
  });
});
