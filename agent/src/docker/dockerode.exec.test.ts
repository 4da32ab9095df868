import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { ToolSpecInput } from '../../../protocol/src/index.ts';
import { createDockerodePort } from './dockerode.ts';
import { buildCreatePayload } from './payload.ts';
import type { DockerPort, ExecRequest } from './port.ts';

// DockerPort.sandboxInfo/exec against the real engine: a warm sandbox (idle `sleep`, the same
// locked-down payload) runs one process with the tool's argv, user, stdin, timeout and output cap.
describe('DockerPort.exec in a warm sandbox (real engine)', () => {
  const socketPath = inject('dockerSocket');
  const image = inject('testImage');
  const hostId = `exec-${randomUUID().slice(0, 12)}`;
  const docker = new Docker({ socketPath });
  const port: DockerPort = createDockerodePort({ socketPath });

  afterAll(async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  });

  async function sandbox(spec: Omit<ToolSpecInput, 'image'> = {}): Promise<string> {
    const payload = buildCreatePayload(
      { id: `w${randomUUID().slice(0, 8)}`, tool: 'exec', version: 1, kind: 'warm', revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image, ...spec }) },
      { hostId, allowedMounts: [], engineEndpoint: socketPath, nameSuffix: randomUUID().slice(0, 8) },
    );
    const id = await port.create(payload);
    await port.start(id);
    return id;
  }
  const req = (containerId: string, argv: string[], o: Partial<ExecRequest> = {}): ExecRequest => ({
    containerId,
    argv,
    user: '65534:65534',
    stdin: null,
    timeoutMs: 10_000,
    maxOutputBytes: 1024 * 1024,
    signal: new AbortController().signal,
    ...o,
  });

  it('idles with the image sleep under docker-init, labelled warm, with the locked-down host config', async () => {
    const id = await sandbox();
    const info = await port.sandboxInfo(id);
    expect(info.running).toBe(true);
    const c = await docker.getContainer(id).inspect();
    expect(c.Config.Labels['machete.kind']).toBe('warm');
    expect(c.Config.Entrypoint).toEqual(['sleep']);
    expect(c.HostConfig).toMatchObject({ CapDrop: ['ALL'], ReadonlyRootfs: true, Init: true, NetworkMode: 'none', SecurityOpt: ['no-new-privileges:true'] });
    const top = await docker.getContainer(id).top();
    expect(top.Processes.map((p: string[]) => p.at(-1)).join('\n')).toMatch(/docker-init -- sleep 2147483647/);
  });

  it('runs argv verbatim as the tool user, with no capabilities and no-new-privileges, and reports the exit code', async () => {
    const id = await sandbox();
    const r = await port.exec(req(id, ['sh', '-c', 'id -u; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; echo "$1" >&2; exit 5', 'x', 'a b "c"']));
    expect(r).toMatchObject({ status: 'failed', exitCode: 5, stderr: 'a b "c"\n', containerId: id, truncated: false });
    expect(r!.stdout).toMatch(/^65534\nCapEff:\s+0000000000000000\nNoNewPrivs:\s+1\n$/);
  });

  it('writes stdin, closes it, and keeps stdout and stderr apart', async () => {
    const id = await sandbox();
    const r = await port.exec(req(id, ['sh', '-c', 'cat; echo err >&2'], { stdin: 'hello\nworld' }));
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'hello\nworld', stderr: 'err\n' });
    // stdin null: closed at once, a reader sees EOF instead of hanging.
    const id2 = await sandbox();
    expect(await port.exec(req(id2, ['cat']))).toMatchObject({ status: 'succeeded', stdout: '' });
  });

  it('kills the sandbox at the timeout and on abort', async () => {
    const id = await sandbox();
    const t0 = Date.now();
    const r = await port.exec(req(id, ['sleep', '30'], { timeoutMs: 500 }));
    expect(r).toMatchObject({ status: 'timeout', exitCode: null });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await port.sandboxInfo(id)).running).toBe(false);

    const id2 = await sandbox();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    expect(await port.exec(req(id2, ['sleep', '30'], { signal: ac.signal }))).toMatchObject({ status: 'cancelled', exitCode: null });
    expect((await port.sandboxInfo(id2)).running).toBe(false);
  });

  it('caps a flood per stream and marks it truncated', async () => {
    const id = await sandbox();
    const r = await port.exec(req(id, ['sh', '-c', 'yes machete | head -c 20000000'], { maxOutputBytes: 1000 }));
    expect(r).toMatchObject({ status: 'succeeded', truncated: true });
    expect(r!.stdout.length).toBe(1000);
  });

  it('answers null, running nothing, when the sandbox is gone or stopped', async () => {
    const id = await sandbox();
    await docker.getContainer(id).kill();
    await docker.getContainer(id).wait();
    expect(await port.exec(req(id, ['true']))).toBeNull();
    await port.remove(id);
    expect(await port.exec(req(id, ['true']))).toBeNull();
  });
});
