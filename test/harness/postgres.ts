// Throwaway PostgreSQL cluster on a free loopback port. PostgreSQL refuses to
// run as root, so initdb and pg_ctl run as the `postgres` user in a directory
// that user owns.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface Postgres {
  url: string;
  stop(): Promise<void>;
}

const TMP = '/tmp';
const DIR_PATTERN = /^mchpg-[A-Za-z0-9]{6}$/;
const INSTALL_HINT = "install Debian's `postgresql` package (apt-get install postgresql)";

export async function startPostgres(): Promise<Postgres> {
  const bin = findPgBin();
  const user = postgresUser();
  await removeStaleDirs();
  const base = mkdtempSync(path.join(TMP, 'mchpg-'));
  writeFileSync(path.join(base, 'owner.json'), JSON.stringify({ ownerPid: process.pid, startedAt: Date.now() }));
  chownSync(base, user.uid, user.gid);
  const dataDir = path.join(base, 'data');
  const pgCtl = (args: string[], timeoutMs: number) =>
    runAsPostgres(path.join(bin, 'pg_ctl'), args, base, timeoutMs);

  let started = false;
  // If the test process dies without stop(), SIGQUIT (= immediate shutdown) the postmaster.
  const killOnExit = () => {
    const pid = postmasterPid(dataDir);
    if (pid !== undefined) try { process.kill(pid, 'SIGQUIT'); } catch { /* gone */ }
  };
  process.on('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    // A start that timed out may still have left a postmaster behind.
    if (started || postmasterPid(dataDir) !== undefined) {
      started = false;
      await pgCtl(['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], 40_000).catch(() => undefined);
    }
    await rm(base, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  };

  try {
    await runAsPostgres(
      path.join(bin, 'initdb'),
      ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'],
      base,
      120_000,
    );
    // Another process may grab the probed port before postgres binds it: retry.
    let port = 0;
    for (let attempt = 1; !started; attempt++) {
      port = await freePort();
      const options = `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
      try {
        await pgCtl(['start', '-D', dataDir, '-l', path.join(base, 'pg.log'), '-w', '-t', '60', '-o', options], 70_000);
        started = true;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    await waitReady(bin, port);
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
  } catch (err) {
    const log = tail(path.join(base, 'pg.log'));
    await stop();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`PostgreSQL failed to start: ${msg}${log ? `\n--- tail of pg.log ---\n${log}` : ''}`);
  }
}

function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres')));
  } catch { /* not installed */ }
  versions.sort((a, b) => Number(b) - Number(a));
  const preferred = versions.includes('15') ? '15' : versions[0];
  if (preferred === undefined) throw new Error(`PostgreSQL binaries not found under ${root}: ${INSTALL_HINT}`);
  return path.join(root, preferred, 'bin');
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error(`user \`postgres\` does not exist: ${INSTALL_HINT}`);
  return { uid: Number(uid), gid: Number(gid) };
}

function runAsPostgres(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  // runuser needs root; when already running as postgres, call directly.
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    const collect = (c: Buffer) => { out = (out + c.toString()).slice(-4000); };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(cmd)} ${args[0] ?? ''} exited ${code ?? signal}: ${out.trim()}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Clusters of crashed runs: owner process and postmaster are both gone. */
async function removeStaleDirs(): Promise<void> {
  let entries: string[] = [];
  try { entries = readdirSync(TMP); } catch { return; }
  const stale: string[] = [];
  for (const e of entries) {
    if (!DIR_PATTERN.test(e)) continue;
    const base = path.join(TMP, e);
    try {
      const owner = JSON.parse(readFileSync(path.join(base, 'owner.json'), 'utf8')) as { ownerPid?: number };
      if (typeof owner.ownerPid === 'number' && isAlive(owner.ownerPid)) continue;
      const pm = postmasterPid(path.join(base, 'data'));
      if (pm !== undefined && isAlive(pm)) continue;
      if (!statSync(base).isDirectory()) continue;
      stale.push(base);
    } catch { /* not ours, or mid-setup */ }
  }
  await Promise.all(stale.map((b) => rm(b, { recursive: true, force: true }).catch(() => undefined)));
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** pg_ctl -w checks the unix socket; make sure the TCP listener answers too. */
async function waitReady(bin: string, port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = spawnSync(path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres']);
    if (r.status === 0) return;
    if (Date.now() > deadline) throw new Error(`pg_isready on 127.0.0.1:${port} kept failing (status ${r.status})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
