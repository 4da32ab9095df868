import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, TestCluster, waitFor } from '../../../test/helpers/cluster.ts';
import { machete, tempHome } from '../../../test/helpers/cli.ts';

// The CLI in-process against a real control plane (embedded PGlite, loopback HTTP), no agent.
let cluster: TestCluster;
let admin = '';
let home = '';
/** The environment of a logged-in user: a HOME whose config holds the server and the admin token. */
const env = () => ({ HOME: home });
const run = (argv: string[], opts: Parameters<typeof machete>[2] = {}) => machete(argv, env(), opts);
const specFile = (name: string, text: string) => {
  const f = path.join(home, name);
  writeFileSync(f, text);
  return f;
};

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  const server = await cluster.startServer();
  admin = (await server.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 3600 })).token;
  home = tempHome();
  const r = await machete(['login', '--server', cluster.url], { HOME: home }, { stdin: `${admin}\n` });
  expect(r, r.stderr).toMatchObject({ code: 0 });
});
afterAll(async () => {
  await cluster?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('login', () => {
  it('stores server and token in a 0600 file in a 0700 directory, and later commands use it', async () => {
    const file = path.join(home, '.config', 'machete', 'config.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ server: cluster.url, token: admin });
    expect((await run(['tool', 'ls', '--json'])).code).toBe(0);
  });

  it('reads the token from --token-file and honours XDG_CONFIG_HOME', async () => {
    const h = tempHome();
    const xdg = path.join(h, 'xdg');
    const tokenFile = path.join(h, 'token');
    writeFileSync(tokenFile, `${admin}\n`, { mode: 0o600 });
    const r = await machete(['login', '--server', `${cluster.url}/`, '--token-file', tokenFile], { HOME: h, XDG_CONFIG_HOME: xdg });
    expect(r.code, r.stderr).toBe(0);
    const saved = JSON.parse(readFileSync(path.join(xdg, 'machete', 'config.json'), 'utf8'));
    expect(saved).toEqual({ server: cluster.url, token: admin });
    rmSync(h, { recursive: true, force: true });
  });

  it('refuses a token the server refuses (exit 1) and saves nothing', async () => {
    const h = tempHome();
    const forged = `${admin.slice(0, -4)}AAAA`;
    const r = await machete(['login', '--server', cluster.url], { HOME: h }, { stdin: forged });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: .*refused the token.*401/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(() => statSync(path.join(h, '.config', 'machete', 'config.json'))).toThrow();
    rmSync(h, { recursive: true, force: true });
  });

  it('says where it could not connect (exit 1)', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const r = await run(['tool', 'ls'], { env: { MACHETE_SERVER: closed } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`machete: cannot reach ${closed}: `);
  });

  it('lets MACHETE_TOKEN override the stored token', async () => {
    const r = await run(['tool', 'ls'], { env: { MACHETE_TOKEN: 'not.a.token' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(401 unauthenticated)');
  });
});

describe('tool apply', () => {
  it('applies YAML: created, then unchanged, then updated to version 2', async () => {
    const f = specFile('hello.yaml', `name: cli-hello\nimage: ${inject('testImage')}\ncommand: [sleep, "3600"]\n`);
    expect((await run(['tool', 'apply', '-f', f])).stdout).toBe('tool/cli-hello created (version 1)\n');
    expect((await run(['tool', 'apply', '-f', f])).stdout).toBe('tool/cli-hello unchanged (version 1)\n');
    specFile('hello.yaml', `name: cli-hello\nimage: ${inject('testImage')}\ncommand: [sleep, "7200"]\nresources:\n  memoryMb: 64\n`);
    const r = await run(['tool', 'apply', '-f', f]);
    expect(r).toMatchObject({ code: 0, stdout: 'tool/cli-hello updated (version 2)\n' });
    const t = JSON.parse((await run(['tool', 'get', 'cli-hello', '--json'])).stdout);
    expect(t).toMatchObject({ name: 'cli-hello', version: 2, spec: { command: ['sleep', '7200'], resources: { memoryMb: 64 } } });
  });

  it('applies JSON the same way, with --json output', async () => {
    const f = specFile('j.json', JSON.stringify({ name: 'cli-json', image: inject('testImage') }));
    const first = JSON.parse((await run(['tool', 'apply', '-f', f, '--json'])).stdout);
    expect(first).toMatchObject({ status: 'created', tool: { name: 'cli-json', version: 1 } });
    expect((await run(['tool', 'apply', '-f', f])).stdout).toBe('tool/cli-json unchanged (version 1)\n');
    specFile('j.json', JSON.stringify({ name: 'cli-json', image: inject('testImage'), env: { A: '1' } }));
    expect((await run(['tool', 'apply', '-f', f])).stdout).toBe('tool/cli-json updated (version 2)\n');
  });

  it('takes the name from --name, else the positional, else the file; the name field is never sent', async () => {
    const f = specFile('named.yaml', `name: cli-from-file\nimage: ${inject('testImage')}\n`);
    expect((await run(['tool', 'apply', '-f', f, '--name', 'cli-from-flag'])).stdout).toBe('tool/cli-from-flag created (version 1)\n');
    expect((await run(['tool', 'apply', 'cli-from-arg', '-f', f])).stdout).toBe('tool/cli-from-arg created (version 1)\n');
    expect((await run(['tool', 'apply', '-f', f])).stdout).toBe('tool/cli-from-file created (version 1)\n');
    const flag = JSON.parse((await run(['tool', 'get', 'cli-from-flag', '--json'])).stdout);
    expect(flag.spec).not.toHaveProperty('name');

    const anonymous = specFile('anon.yaml', `image: ${inject('testImage')}\n`);
    const r = await run(['tool', 'apply', '-f', anonymous]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^machete: which tool\?/);
    expect((await run(['tool', 'apply', 'a-name', '--name', 'b-name', '-f', anonymous])).code).toBe(2);
  });

  it('reads the spec from stdin with -f -', async () => {
    const r = await run(['tool', 'apply', 'cli-stdin', '-f', '-'], { stdin: `image: ${inject('testImage')}\n` });
    expect(r).toMatchObject({ code: 0, stdout: 'tool/cli-stdin created (version 1)\n' });
  });

  it('fails with exit 1 naming an unknown field of the spec', async () => {
    const f = specFile('bad.yaml', `name: cli-bad\nimage: ${inject('testImage')}\ncomand: [sleep, "1"]\n`);
    const r = await run(['tool', 'apply', '-f', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: .*"comand".*\(400 invalid_argument\)\n$/);
    expect((await run(['tool', 'get', 'cli-bad'])).code).toBe(1);

    specFile('bad.yaml', `name: cli-bad\nimage: ${inject('testImage')}\ncomand: [sleep, "1"]\nresources: {cpus: 0.5, gpus: 1}\n`);
    const two = await run(['tool', 'apply', '-f', f]);
    expect(two.code).toBe(1);
    expect(two.stderr).toContain('"gpus"');
    expect(two.stderr).toContain('"comand"');
    expect(two.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('fails with exit 1 on a file that is missing or not YAML', async () => {
    expect((await run(['tool', 'apply', '-f', path.join(home, 'nope.yaml')])).stderr).toMatch(/^machete: cannot read .*ENOENT/);
    const r = await run(['tool', 'apply', '-f', specFile('broken.yaml', 'image: [unclosed\n')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: .*not valid YAML/);
  });
});

describe('tool ls, get, rm', () => {
  it('lists tools as JSON that parses and as an aligned table', async () => {
    const f = specFile('ls.yaml', `name: cli-ls\nimage: ${inject('testImage')}\ncommand: [sleep, "5"]\n`);
    await run(['tool', 'apply', '-f', f]);
    const list = JSON.parse((await run(['tool', 'ls', '--json'])).stdout);
    expect(list).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'cli-ls', version: 1 })]));
    const table = (await run(['tool', 'ls'])).stdout.trimEnd().split('\n');
    expect(table[0]).toMatch(/^NAME\s+VERSION\s+IMAGE\s+COMMAND\s+UPDATED$/);
    const line = table.find((l) => l.startsWith('cli-ls '))!;
    expect(line).toContain(inject('testImage'));
    expect(line.indexOf(inject('testImage'))).toBe(table[0]!.indexOf('IMAGE'));
  });

  it('prints YAML that applies back unchanged', async () => {
    const got = await run(['tool', 'get', 'cli-ls']);
    expect(YAML.parse(got.stdout)).toMatchObject({ name: 'cli-ls', image: inject('testImage'), command: ['sleep', '5'] });
    const again = await run(['tool', 'apply', '-f', specFile('roundtrip.yaml', got.stdout)]);
    expect(again.stdout).toBe('tool/cli-ls unchanged (version 1)\n');
  });

  it('deletes a tool; a second delete is a one-line not-found error', async () => {
    expect((await run(['tool', 'rm', 'cli-ls'])).stdout).toBe('tool/cli-ls deleted\n');
    const r = await run(['tool', 'rm', 'cli-ls']);
    expect(r).toMatchObject({ code: 1, stderr: 'machete: tool not found (404 not_found)\n' });
  });
});

describe('tokens', () => {
  it('token create prints only a token that works; token revoke makes the server refuse it', async () => {
    const created = await run(['token', 'create', '--role', 'viewer', '--name', 'cli-test', '--ttl', '600']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(created.stdout).toBe(`${token}\n`);
    expect(token.split('.')).toHaveLength(3);
    const id = /token id (\S+),/.exec(created.stderr)![1]!;

    const asViewer = { MACHETE_TOKEN: token };
    expect((await run(['tool', 'ls', '--json'], { env: asViewer })).code).toBe(0);
    const write = await run(['tool', 'rm', 'cli-json'], { env: asViewer });
    expect(write).toMatchObject({ code: 1, stderr: expect.stringContaining('(403 forbidden)') });

    expect((await run(['token', 'revoke', id])).stdout).toBe(`token ${id} revoked\n`);
    const refused = await run(['tool', 'ls'], { env: asViewer });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^machete: .*\(401 unauthenticated\)/);
  });

  it('token revoke also takes the token itself', async () => {
    const token = (await run(['token', 'create', '--role', 'operator'])).stdout.trim();
    expect((await run(['token', 'revoke', token])).code).toBe(0);
    expect((await run(['tool', 'ls'], { env: { MACHETE_TOKEN: token } })).code).toBe(1);
  });

  it('join-token create prints a join token with --json details on request', async () => {
    const plain = await run(['join-token', 'create', '--ttl', '600', '--label', 'zone=a', '--label', 'disk=ssd']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trim().split('.')).toHaveLength(3);
    const json = JSON.parse((await run(['join-token', 'create', '--json'])).stdout);
    expect(json).toEqual({ token: expect.any(String), expiresAt: expect.any(String), singleUse: false });
    const once = JSON.parse((await run(['join-token', 'create', '--single-use', '--json'])).stdout);
    expect(once).toMatchObject({ singleUse: true });
    // The flag is in the signed token itself, not only in the answer.
    expect(JSON.parse(Buffer.from(once.token.split('.')[1], 'base64url').toString('utf8'))).toMatchObject({ once: true });
  });
});

describe('usage errors exit 2, help exits 0', () => {
  it.each([
    [['frobnicate']],
    [['tool', 'apply']],
    [['tool', 'get']],
    [['scale', 'x']],
    [['scale', 'x', 'many']],
    [['token', 'create']],
    [['token', 'create', '--role', 'root']],
    [['events', '--limit', '0']],
    [['tool', 'ls', '--bogus']],
    [['hosts', 'label', 'h1', 'novalue']],
  ])('machete %j', async (argv) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^machete: /);
    expect(r.stdout).toBe('');
  });

  it('prints help with --help everywhere', async () => {
    for (const argv of [['--help'], ['tool', '--help'], ['tool', 'apply', '--help'], ['scale', '--help'], ['events', '--help'], []]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: machete/);
    }
  });
});

describe('events', () => {
  it('--json shows the audit event of an apply', async () => {
    const r = await run(['events', '--json', '--limit', '1000']);
    const events = JSON.parse(r.stdout);
    expect(events).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'audit', action: 'tool.put', target: 'cli-hello', outcome: 'ok', data: { version: 2 } })]),
    );
    const table = (await run(['events'])).stdout;
    expect(table.split('\n')[0]).toMatch(/^ID\s+TIME\s+KIND\s+ACTOR\s+ACTION/);
  });

  it('-f prints events as they happen and stops when interrupted', async () => {
    const ac = new AbortController();
    let seen = '';
    const following = run(['events', '-f', '--limit', '1'], { signal: ac.signal, onStdout: (s) => (seen = s) });
    await waitFor(async () => seen.length > 0, 'the backlog line');
    expect(seen.includes('cli-follow')).toBe(false);
    const f = specFile('follow.yaml', `name: cli-follow\nimage: ${inject('testImage')}\n`);
    expect((await run(['tool', 'apply', '-f', f])).code).toBe(0);
    await waitFor(async () => /tool\.put cli-follow {2}ok by token:/.test(seen), 'the followed event');
    ac.abort();
    const r = await following;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.includes('cli-follow'))).toHaveLength(1);
  });

  it('-f --json prints one JSON object per line', async () => {
    const ac = new AbortController();
    let seen = '';
    const following = run(['events', '-f', '--json', '--limit', '3'], { signal: ac.signal, onStdout: (s) => (seen = s) });
    await waitFor(async () => seen.split('\n').length > 3, 'three backlog lines');
    ac.abort();
    const lines = (await following).stdout.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty('action');
  });
});

describe('config file', () => {
  it('a damaged config file is a one-line error, and login replaces it', async () => {
    const h = tempHome();
    mkdirSync(path.join(h, '.config', 'machete'), { recursive: true });
    writeFileSync(path.join(h, '.config', 'machete', 'config.json'), '{nope');
    const r = await machete(['tool', 'ls'], { HOME: h });
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/^machete: .*not valid JSON.*\n$/) });
    expect((await machete(['login', '--server', cluster.url], { HOME: h }, { stdin: admin })).code).toBe(0);
    expect((await machete(['tool', 'ls'], { HOME: h })).code).toBe(0);
    rmSync(h, { recursive: true, force: true });
  });
});
