import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, statSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, waitFor } from '../helpers/cluster.ts';

// `npm start` as a newcomer runs it: one process, embedded PGlite, a local agent on the engine.
const root = path.resolve(import.meta.dirname, '../..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'machete-start-'));
let port = 0;
let proc: ChildProcess | null = null;
let output = '';
let docker: Docker;

function start(): ChildProcess {
  const p = spawn(process.execPath, [path.join(root, 'bin/machete.mjs'), 'serve'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      MACHETE_PORT: String(port),
      MACHETE_DATA_DIR: dataDir,
      DOCKER_HOST: `unix://${inject('dockerSocket')}`,
      MACHETE_HOST_NAME: 'start-test',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout!.on('data', (d) => (output += d));
  p.stderr!.on('data', (d) => (output += d));
  return p;
}
async function stop(p: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  p.kill('SIGTERM');
  return exited;
}
const token = () => readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
async function api(method: string, p: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method,
    headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
const ours = async () => (await docker.listContainers({ all: true, filters: { label: ['machete.tool=starter'] } })).map((c) => `${c.Id}:${c.State}`).sort();

beforeAll(async () => {
  docker = new Docker({ socketPath: inject('dockerSocket') });
  port = await freePort();
  proc = start();
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/api/health`).catch(() => null))?.ok, 'health', 60_000, 200);
});
afterAll(async () => {
  if (proc && proc.exitCode === null) await stop(proc);
  for (const c of await docker.listContainers({ all: true, filters: { label: ['machete.tool=starter'] } })) await docker.getContainer(c.Id).remove({ force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('writes secret.key and admin.token with mode 0600 and logs their paths, not their contents', () => {
    for (const f of ['secret.key', 'admin.token']) {
      expect(statSync(path.join(dataDir, f)).mode & 0o777).toBe(0o600);
      expect(output).toContain(path.join(dataDir, f));
    }
    expect(output).not.toContain(token());
    expect(output).not.toContain(readFileSync(path.join(dataDir, 'secret.key'), 'utf8').trim());
  });

  it('runs a tool on the local engine through the local agent', async () => {
    await waitFor(async () => (await api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'local agent ready');
    expect((await api('PUT', '/api/v1/tools/starter', { image: inject('testImage'), command: ['sleep', '3600'] })).status).toBe(201);
    expect((await api('PUT', '/api/v1/tools/starter/deployment', { replicas: 2 })).status).toBe(200);
    await waitFor(async () => (await api('GET', '/api/v1/tools/starter/deployment')).body.running === 2, '2 replicas running');
    expect((await ours()).filter((c) => c.endsWith(':running'))).toHaveLength(2);
  });

  it('stops cleanly on SIGTERM, leaves containers running, and adopts them on the next start', async () => {
    const before = await ours();
    expect(await stop(proc!)).toBe(0);
    expect(await ours()).toEqual(before);
    proc = start();
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/api/health`).catch(() => null))?.ok, 'health after restart', 60_000, 200);
    await waitFor(async () => (await api('GET', '/api/v1/tools/starter/deployment')).body.running === 2, 'adopted');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await ours()).toEqual(before);
    expect(output.match(/enrolled; credential saved/g)).toHaveLength(1);
  });

  it('takes a newcomer from npm start to a running tool and an invocation with the CLI alone', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'machete-newcomer-'));
    // The CLI as the README shows it: the package's bin, a token from the file on stdin, config in $HOME.
    const cli = (args: string[], stdin?: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [path.join(root, 'bin/machete.mjs'), ...args], {
          cwd: root,
          env: { PATH: process.env.PATH ?? '', HOME: home },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        c.stdout.on('data', (d) => (stdout += d));
        c.stderr.on('data', (d) => (stderr += d));
        c.stdin.end(stdin ?? '');
        c.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    try {
      expect((await cli(['login', '--server', `http://127.0.0.1:${port}`], token())).code).toBe(0);
      // A long-running tool, scaled: `scale` waits until both replicas run.
      const spec = path.join(home, 'tool.yaml');
      writeFileSync(spec, `name: sleeper\nimage: ${inject('testImage')}\ncommand: [sleep, '3600']\n`);
      const apply = await cli(['tool', 'apply', '-f', spec]);
      expect(apply.code, apply.stderr).toBe(0);
      const scale = await cli(['scale', 'sleeper', '2']);
      expect(scale.code, scale.stderr).toBe(0);
      const dep = await api('GET', '/api/v1/tools/sleeper/deployment');
      expect(dep.body.running).toBe(2);
      // A tool run on demand: its stdout, then its exit code.
      writeFileSync(spec, `name: greeter\nimage: ${inject('testImage')}\ncommand: [echo]\n`);
      expect((await cli(['tool', 'apply', '-f', spec])).code).toBe(0);
      const listed = JSON.parse((await cli(['tool', 'ls', '--json'])).stdout);
      expect(listed.map((t: { name: string }) => t.name).sort()).toEqual(['greeter', 'sleeper', 'starter']);
      const invoked = await cli(['invoke', 'greeter', '--', 'hello', 'new user']);
      expect(invoked).toMatchObject({ code: 0, stdout: 'hello new user\n' });
      // The tool's own exit code becomes the CLI's.
      writeFileSync(spec, `name: failer\nimage: ${inject('testImage')}\ncommand: [sh, -c, 'exit 3']\n`);
      expect((await cli(['tool', 'apply', '-f', spec])).code).toBe(0);
      expect((await cli(['invoke', 'failer'])).code).toBe(3);
      for (const t of ['sleeper', 'greeter', 'failer']) expect((await cli(['tool', 'rm', t])).code).toBe(0);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    // Nine CLI processes, each starting Node and compiling TypeScript: ~18 s alone, more under load.
  }, 150_000);

  it('removes the tool and its containers', async () => {
    expect((await api('DELETE', '/api/v1/tools/starter')).status).toBe(204);
    await waitFor(async () => (await ours()).length === 0, 'containers removed');
  });
});
