import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { machete } from '../../../test/helpers/cli.ts';

// `secrets init` and `audit --compose` in-process: neither needs a control plane.
const tmp = mkdtempSync(path.join(os.tmpdir(), 'machete-secrets-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const run = (argv: string[], env: Record<string, string> = {}) => machete(argv, { HOME: tmp, ...env });
const read = (dir: string, name: string) => readFileSync(path.join(dir, name), 'utf8');
const GENERATED = ['signing_key', 'secrets_key', 'metrics_token', 'postgres_password', 'database_url'];

describe('secrets init', () => {
  it('writes 0600 files in a 0700 directory with fresh random values, and prints no value', async () => {
    const dir = path.join(tmp, 'a', 'secrets');
    const r = await run(['secrets', 'init', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of [...GENERATED, 'join_token_host1', 'join_token_host2']) expect(statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
    const key = read(dir, 'signing_key');
    const pw = read(dir, 'postgres_password');
    expect(Buffer.byteLength(key.trim())).toBeGreaterThanOrEqual(32);
    expect(Buffer.byteLength(read(dir, 'secrets_key'))).toBeGreaterThanOrEqual(32);
    expect(read(dir, 'secrets_key')).not.toBe(key);
    expect(read(dir, 'metrics_token').length).toBeGreaterThanOrEqual(16);
    expect(pw.length).toBeGreaterThanOrEqual(32);
    expect(read(dir, 'database_url')).toBe(`postgres://machete:${pw}@postgres:5432/machete`);
    expect(read(dir, 'join_token_host1')).toBe('');
    for (const v of [key, pw]) expect(r.stdout + r.stderr).not.toContain(v);

    const other = path.join(tmp, 'b');
    expect((await run(['secrets', 'init', '--dir', other, '--hosts', '0'])).code).toBe(0);
    expect(read(other, 'signing_key')).not.toBe(key);
    expect(read(other, 'postgres_password')).not.toBe(pw);
  });

  it('keeps existing files unless --force, and never empties a join token', async () => {
    const dir = path.join(tmp, 'c');
    await run(['secrets', 'init', '--dir', dir]);
    const before = Object.fromEntries(GENERATED.map((f) => [f, read(dir, f)]));
    writeFileSync(path.join(dir, 'join_token_host1'), 'eyJ.join.token');

    const again = await run(['secrets', 'init', '--dir', dir, '--hosts', '3', '--json']);
    expect(again.code).toBe(0);
    const status = Object.fromEntries((JSON.parse(again.stdout) as { name: string; status: string }[]).map((x) => [x.name, x.status]));
    expect(status).toEqual({ signing_key: 'kept', secrets_key: 'kept', metrics_token: 'kept', postgres_password: 'kept', database_url: 'kept', join_token_host1: 'kept', join_token_host2: 'kept', join_token_host3: 'created' });
    for (const f of GENERATED) expect(read(dir, f)).toBe(before[f]);

    const forced = await run(['secrets', 'init', '--dir', dir, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/signing_key\s+replaced/);
    for (const f of GENERATED) expect(read(dir, f)).not.toBe(before[f]);
    expect(read(dir, 'database_url')).toContain(`:${read(dir, 'postgres_password')}@`);
    expect(read(dir, 'join_token_host1')).toBe('eyJ.join.token');
    expect(statSync(path.join(dir, 'signing_key')).mode & 0o777).toBe(0o600);
  });

  it('derives a missing DATABASE_URL from the password that is kept', async () => {
    const dir = path.join(tmp, 'd');
    await run(['secrets', 'init', '--dir', dir]);
    rmSync(path.join(dir, 'database_url'));
    await run(['secrets', 'init', '--dir', dir]);
    expect(read(dir, 'database_url')).toBe(`postgres://machete:${read(dir, 'postgres_password')}@postgres:5432/machete`);
  });

  it('says when a kept file is readable by others', async () => {
    const dir = path.join(tmp, 'e');
    await run(['secrets', 'init', '--dir', dir]);
    const { chmodSync } = await import('node:fs');
    chmodSync(path.join(dir, 'signing_key'), 0o644);
    const r = await run(['secrets', 'init', '--dir', dir]);
    expect(r.stdout).toMatch(/signing_key\s+kept\s+mode 644: chmod 600 it/);
  });

  it('chowns with --owner (root only) and refuses a malformed owner as usage', async () => {
    const dir = path.join(tmp, 'f');
    const r = await run(['secrets', 'init', '--dir', dir, '--owner', '1000:1000']);
    if (process.getuid?.() === 0) {
      expect(r.code, r.stderr).toBe(0);
      expect(statSync(path.join(dir, 'signing_key')).uid).toBe(1000);
      expect(statSync(dir).gid).toBe(1000);
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EPERM|not permitted/);
    }
    expect((await run(['secrets', 'init', '--dir', dir, '--owner', 'node'])).code).toBe(2);
  });
});

describe('audit --compose', () => {
  const compose = (name: string, text: string) => {
    const f = path.join(tmp, name);
    writeFileSync(f, text);
    return f;
  };
  const clean = compose('clean.yml', 'services:\n  a:\n    image: x\n    mem_limit: 64m\n    cpus: 0.1\n    security_opt: [no-new-privileges:true]\n    networks: [n]\nnetworks: {n: {}}\n');
  const bad = compose('bad.yml', 'services:\n  a:\n    image: x\n    privileged: true\n    volumes: ["${SOCK:-/var/run/docker.sock}:/s"]\n    environment: {DB_PASSWORD: hunter2}\n');

  it('exits 0 on a clean file', async () => {
    const r = await run(['audit', '--compose', clean]);
    expect(r).toMatchObject({ code: 0, stdout: `${clean}: no findings\n` });
  });

  it('exits 1 with a table, high severity first, and never shows the secret', async () => {
    const r = await run(['audit', '--compose', bad]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SEVERITY\s+RULE\s+SERVICE\s+FINDING$/);
    expect(lines[1]).toMatch(/^high/);
    expect(lines.at(-1)).toMatch(/^medium/);
    expect(r.stdout).not.toContain('hunter2');
    expect(r.stderr).toBe(`7 findings in ${bad}\n`);
  });

  it('prints {file, findings} with --json, and interpolates from the environment', async () => {
    const r = await run(['audit', '--compose', bad, '--json'], { SOCK: '/srv/data' });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { file: string; findings: { rule: string; service: string }[] };
    expect(out.file).toBe(bad);
    expect(out.findings.map((f) => f.rule).sort()).toEqual(['cpu-limit', 'inline-secret', 'memory-limit', 'network-segmentation', 'no-new-privileges', 'privileged']);
  });

  it('is a usage error (2) for an unknown option, or for a missing or malformed file', async () => {
    expect((await run(['audit', '--composer', clean])).code).toBe(2);
    expect((await run(['audit', 'extra'])).code).toBe(2);
    const missing = await run(['audit', '--compose', path.join(tmp, 'nope.yml')]);
    expect(missing).toMatchObject({ code: 2 });
    expect(missing.stderr).toMatch(/cannot read .*ENOENT/);
    expect((await run(['audit', '--compose', compose('broken.yml', 'services: [')])).code).toBe(2);
  });

  it('without --compose audits the running MACHETE, which needs a token (exit 1 naming it, nothing sent)', async () => {
    const r = await run(['audit'], { MACHETE_SERVER: 'http://127.0.0.1:9' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: no token for http:\/\/127\.0\.0\.1:9/);
  });
});
