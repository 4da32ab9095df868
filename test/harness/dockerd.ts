// Isolated dockerd per test run (or per simulated host). Each daemon gets its
// own data root, exec root, pidfile, socket and empty config file, so it never
// touches the machine's default daemon or another test daemon.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

export interface Dockerd {
  socketPath: string;
  /** `unix://…`, ready for DOCKER_HOST or dockerode's `socketPath`. */
  dockerHost: string;
  stop(): Promise<void>;
}

const TMP = '/tmp';
// Unix socket paths are limited to 107 bytes, so keep the prefix short.
const DIR_PREFIX = 'mch-';
const DIR_PATTERN = /^mch-[a-z0-9-]+-[A-Za-z0-9]{6}$/;
const OWNER_FILE = 'owner.json';
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 15_000;

export async function startDockerd(opts: { name: string }): Promise<Dockerd> {
  const bin = findDockerd();
  await removeStaleDirs();
  const name = opts.name.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 24) || 'd';
  const base = mkdtempSync(path.join(TMP, `${DIR_PREFIX}${name}-`));
  writeFileSync(path.join(base, OWNER_FILE), JSON.stringify({ ownerPid: process.pid, startedAt: Date.now() }));
  writeFileSync(path.join(base, 'daemon.json'), '{}\n');
  const socketPath = path.join(base, 'd.sock');
  const logPath = path.join(base, 'd.log');
  const args = [
    `--config-file=${path.join(base, 'daemon.json')}`,
    `--data-root=${path.join(base, 'data')}`,
    `--exec-root=${path.join(base, 'x')}`,
    `--pidfile=${path.join(base, 'd.pid')}`,
    '-H', `unix://${socketPath}`,
    '--bridge=none', '--iptables=false', '--ip6tables=false',
    '--userland-proxy=false',
    '--shutdown-timeout=2',
  ];
  const logFd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', logFd, logFd], env: daemonEnv() });
  } finally {
    closeSync(logFd);
  }
  const exited = waitForExit(child);
  trackChild(child);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    untrackChild(child);
    await withTimeout(killContainers(socketPath), 5_000).catch(() => undefined);
    await terminate(child, exited);
    await killLeftovers(base);
    await removeDir(base);
  };

  try {
    await waitForPing(socketPath, child, exited, logPath);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socketPath, dockerHost: `unix://${socketPath}`, stop };
}

/** Minimal Engine API call over the unix socket; no docker CLI needed. */
export function engineRequest(
  socketPath: string,
  method: string,
  urlPath: string,
  body?: Buffer | NodeJS.ReadableStream,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, headers, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

// If the test process dies without calling stop(), take the daemons with it
// instead of leaving them running. One listener for all daemons.
const liveChildren = new Set<ChildProcess>();
function killAllOnExit(): void {
  for (const c of liveChildren) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
function trackChild(child: ChildProcess): void {
  if (liveChildren.size === 0) process.on('exit', killAllOnExit);
  liveChildren.add(child);
}
function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child);
  if (liveChildren.size === 0) process.off('exit', killAllOnExit);
}

/**
 * A daemon shutting down gives each container its stop timeout (10 s by
 * default), and test containers often run `sleep` as PID 1, which ignores
 * SIGTERM. The daemon is throwaway, so kill its containers outright first.
 */
async function killContainers(socketPath: string): Promise<void> {
  const res = await engineRequest(socketPath, 'GET', '/containers/json');
  if (res.status !== 200) return;
  const ids = (JSON.parse(res.body) as Array<{ Id: string }>).map((c) => c.Id);
  await Promise.allSettled(ids.map((id) => engineRequest(socketPath, 'POST', `/containers/${id}/kill`)));
}

function findDockerd(): string {
  for (const p of ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd']) {
    if (existsSync(p)) return p;
  }
  throw new Error("dockerd not found: install Debian's `docker.io` package (apt-get install docker.io)");
}

function daemonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DOCKER_HOST;
  delete env.DOCKER_CONFIG;
  return env;
}

function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: -1, signal: null }));
  });
}

async function waitForPing(
  socketPath: string,
  child: ChildProcess,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  logPath: string,
): Promise<void> {
  let dead: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((r) => { dead = r; });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (dead) {
      throw new Error(
        `dockerd (pid ${child.pid ?? '?'}) exited during startup (code ${dead.code}, signal ${dead.signal}).\n` +
        `--- tail of ${logPath} ---\n${logTail(logPath)}`,
      );
    }
    if (existsSync(socketPath)) {
      try {
        const res = await engineRequest(socketPath, 'GET', '/_ping');
        if (res.status === 200) return;
      } catch { /* not listening yet */ }
    }
    await sleep(100);
  }
  throw new Error(
    `dockerd did not answer /_ping on ${socketPath} within ${START_TIMEOUT_MS / 1000}s.\n` +
    `--- tail of ${logPath} ---\n${logTail(logPath)}`,
  );
}

function logTail(logPath: string, lines = 40): string {
  try {
    return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function terminate(
  child: ChildProcess,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), STOP_GRACE_MS); });
  const timedOut = await Promise.race([exited.then(() => false), grace]);
  clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * After a SIGKILL the daemon's containerd, shims and container processes may
 * survive. They were started by this daemon: containerd and shims name its
 * directory on their command line, container processes sit in cgroups named
 * after its container ids. They are found by pid through /proc, never by name.
 */
async function killLeftovers(base: string): Promise<void> {
  const ids = containerIds(base);
  const pids = [...new Set([...pidsMentioning(base), ...pidsInContainerCgroups(ids)])];
  if (pids.length === 0) return;
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  // A cgroup can only be removed once its processes are gone.
  for (let i = 0; i < 50 && pids.some(isAlive); i++) await sleep(50);
  removeContainerCgroups(ids);
}

function containerIds(base: string): string[] {
  try {
    return readdirSync(path.join(base, 'data', 'containers')).filter((id) => /^[0-9a-f]{64}$/.test(id));
  } catch {
    return [];
  }
}

function pidsInContainerCgroups(ids: string[]): number[] {
  if (ids.length === 0) return [];
  const pids: number[] = [];
  for (const e of safeReaddir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cg = readFileSync(`/proc/${e}/cgroup`, 'utf8');
      if (ids.some((id) => cg.includes(id))) pids.push(Number(e));
    } catch { /* raced with exit */ }
  }
  return pids;
}

/** Empty cgroups a killed daemon could not remove (cgroupfs driver, v1 or v2). */
function removeContainerCgroups(ids: string[]): void {
  const roots = ['/sys/fs/cgroup', ...safeReaddir('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}`)];
  for (const root of roots) {
    for (const id of ids) {
      try { rmdirSync(path.join(root, 'docker', id)); } catch { /* absent or busy */ }
    }
  }
}

function safeReaddir(dir: string): string[] {
  try { return readdirSync(dir); } catch { return []; }
}

function pidsMentioning(base: string): number[] {
  const pids: number[] = [];
  for (const e of safeReaddir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes(`${base}/`) || cmd.includes(`${base}\0`)) pids.push(pid);
    } catch { /* raced with exit */ }
  }
  return pids;
}

function mountsUnder(base: string): string[] {
  let text: string;
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const decoded = mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === base || decoded.startsWith(`${base}/`)) out.push(decoded);
  }
  // Deepest first, so nested mounts go before their parents.
  return out.sort((a, b) => b.length - a.length);
}

/** Unmounts whatever the daemon left mounted, then removes the directory. */
async function removeDir(base: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const mounts = mountsUnder(base);
    if (mounts.length === 0) break;
    for (const mp of mounts) {
      const r = spawnSync('umount', [mp], { stdio: 'ignore' });
      if (r.status !== 0) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    }
  }
  // Never rm -rf through a live mount: that would delete someone else's files.
  if (mountsUnder(base).length > 0) {
    process.stderr.write(`[harness] leaving ${base}: still has mounts\n`);
    return;
  }
  await rm(base, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Directories of crashed runs: their owner process and daemon are both gone.
 * A daemon that is still running is left alone (it may belong to someone
 * else's run); only dead leftovers are removed.
 */
async function removeStaleDirs(): Promise<void> {
  let entries: string[];
  try { entries = readdirSync(TMP); } catch { return; }
  const stale: string[] = [];
  for (const e of entries) {
    if (!DIR_PATTERN.test(e)) continue;
    const base = path.join(TMP, e);
    try {
      if (!statSync(base).isDirectory()) continue;
      // Without our owner file the directory is not ours (other code may use
      // the same prefix) or is still being set up: leave it.
      const owner = readOwner(base);
      if (owner === undefined || isAlive(owner)) continue;
      if (!existsSync(path.join(base, 'daemon.json'))) continue;
      const daemonPid = readPid(path.join(base, 'd.pid'));
      if (daemonPid !== undefined && isAlive(daemonPid)) {
        process.stderr.write(`[harness] dockerd ${daemonPid} of a finished run is still running (${base}); not touching it\n`);
        continue;
      }
      if (pidsMentioning(base).length > 0) continue;
      stale.push(base);
    } catch { /* racing with another cleanup */ }
  }
  await Promise.all(stale.map((base) => removeDir(base)));
}

function readOwner(base: string): number | undefined {
  try {
    const data = JSON.parse(readFileSync(path.join(base, OWNER_FILE), 'utf8')) as { ownerPid?: unknown };
    return typeof data.ownerPid === 'number' ? data.ownerPid : undefined;
  } catch {
    return undefined;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
