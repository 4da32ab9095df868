// The test image is built offline from the host's static busybox and imported
// through the Engine API: no registry is reachable, so tests never pull.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { engineRequest } from './dockerd.ts';

export const TEST_IMAGE_REPO = 'machete/busybox';
export const TEST_IMAGE_TAG = 'test';
export const TEST_IMAGE = `${TEST_IMAGE_REPO}:${TEST_IMAGE_TAG}`;

const BUSYBOX = '/bin/busybox';
const APPLETS = [
  'sh', 'sleep', 'echo', 'cat', 'true', 'false', 'ls', 'env', 'id', 'yes', 'dd', 'head', 'wc',
  'printf', 'kill', 'tail', 'seq', 'grep', 'mkdir', 'rm', 'touch', 'date', 'hostname', 'nc',
  'wget', 'ps', 'tr', 'sed', 'stat', 'test', 'uname', 'pwd', 'cp', 'mv', 'chmod', 'whoami',
];

/** Imports `machete/busybox:test` into the daemon unless it is already there. */
export async function ensureTestImage(socketPath: string): Promise<string> {
  const inspect = await engineRequest(socketPath, 'GET', `/images/${TEST_IMAGE}/json`);
  if (inspect.status === 200) return TEST_IMAGE;
  if (inspect.status !== 404) {
    throw new Error(`inspecting ${TEST_IMAGE} failed: HTTP ${inspect.status} ${inspect.body.slice(0, 300)}`);
  }
  if (!existsSync(BUSYBOX) || hasElfInterpreter(BUSYBOX)) {
    throw new Error("/bin/busybox is missing or not statically linked: install Debian's `busybox-static` package");
  }
  const work = mkdtempSync(path.join(tmpdir(), 'mchimg-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    buildRootfs(rootfs);
    const tarball = path.join(work, 'rootfs.tar');
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarball, '.']);
    const body = await readFile(tarball);
    const query = new URLSearchParams({ fromSrc: '-', repo: TEST_IMAGE_REPO, tag: TEST_IMAGE_TAG });
    query.append('changes', 'ENV PATH=/bin');
    query.append('changes', 'CMD ["sh"]');
    const res = await engineRequest(socketPath, 'POST', `/images/create?${query.toString()}`, body, {
      'Content-Type': 'application/x-tar',
      'Content-Length': String(body.length),
    });
    // The import endpoint streams JSON progress and reports errors in-band with HTTP 200.
    if (res.status !== 200 || /"error"\s*:/.test(res.body)) {
      throw new Error(`importing ${TEST_IMAGE} failed: HTTP ${res.status} ${res.body.slice(0, 500)}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const check = await engineRequest(socketPath, 'GET', `/images/${TEST_IMAGE}/json`);
  if (check.status !== 200) throw new Error(`${TEST_IMAGE} missing after import: HTTP ${check.status}`);
  return TEST_IMAGE;
}

function buildRootfs(rootfs: string): void {
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev']) mkdirSync(path.join(rootfs, d), { recursive: true });
  chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  chmodSync(path.join(rootfs, 'root'), 0o700);
  copyFileSync(BUSYBOX, path.join(rootfs, 'bin/busybox'));
  chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  for (const applet of APPLETS) symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  writeFileSync(
    path.join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** A dynamically linked binary (PT_INTERP present) would not run in the empty image. */
function hasElfInterpreter(file: string): boolean {
  const elf = readFileSync(file);
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 <= elf.length && elf.readUInt32LE(off) === 3) return true;
  }
  return false;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
    });
  });
}
