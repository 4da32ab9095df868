import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ToolSpecSchema, type DesiredInstance, type SecretValue, type ToolSpecInput } from '../../../protocol/src/index.ts';
import { parseAllowedMounts } from '../policy/mounts.ts';
import { nodeHostFs } from '../policy/resolve.ts';
import { createDockerodePort } from './dockerode.ts';
import { buildCreatePayload, PolicyRefusal } from './payload.ts';
import { SECRETS_OF_LABEL, sweepSecrets } from './secrets.ts';

// Secrets and resolved mounts on a real engine: what the container sees, what inspect shows,
// and that the per-container secrets volume goes away with its container.
const VALUE = 'p4ss-W0rd-with-unique-marker-7f3a';
const OTHER = 'second-secret-marker-91bc';
const socketPath = inject('dockerSocket');
const image = inject('testImage');
const hostId = `sec-${randomUUID().slice(0, 12)}`;
const docker = new Docker({ socketPath });
const port = createDockerodePort({ socketPath });
const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'machete-mnt-')));
afterAll(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  rmSync(dir, { recursive: true, force: true });
});

const values: SecretValue[] = [
  { name: 'api-key', value: VALUE, version: 3 },
  { name: 'other', value: OTHER, version: 1 },
  { name: 'not-named', value: 'never-mounted-value', version: 1 },
];
function inst(kind: DesiredInstance['kind'], spec: Omit<ToolSpecInput, 'image'>, secrets: SecretValue[] | null = values): DesiredInstance {
  return { id: `i${randomUUID().slice(0, 8)}`, tool: 'sec', version: 1, kind, revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image, ...spec }), ...(secrets ? { secrets } : {}) };
}
const ctx = (allow = '') => ({ hostId, allowedMounts: parseAllowedMounts(allow), engineEndpoint: socketPath, hostFs: nodeHostFs });
const secretVolumes = async () => (await docker.listVolumes({ filters: { label: [`machete.host=${hostId}`, SECRETS_OF_LABEL] } })).Volumes ?? [];
const run = (payload: ReturnType<typeof buildCreatePayload>) => port.run({ payload, stdin: null, timeoutMs: 20_000, maxOutputBytes: 64 * 1024, signal: new AbortController().signal });

describe('secrets on a real engine', () => {
  it('shows an invocation its named secrets as read-only 0400 files of its user, and removes the volume after', async () => {
    const script = 'cat /run/secrets/api-key; echo; ls -ln /run/secrets; touch /run/secrets/x 2>/dev/null && echo WRITABLE; echo > /run/secrets/api-key 2>/dev/null && echo OVERWRITTEN; env';
    const payload = buildCreatePayload(inst('invocation', { command: ['sh', '-c', script], user: '1234:2345', secrets: ['api-key', 'other'] }), ctx());
    const r = await run(payload);
    expect(r.status, r.stderr + (r.reason ?? '')).toBe('succeeded');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(VALUE);
    expect(r.stdout).toMatch(/-r-------- +1 1234 +2345 +\d+ .* api-key/);
    expect(r.stdout).toMatch(/-r-------- +1 1234 +2345 +\d+ .* other/);
    expect(r.stdout).not.toContain('not-named');
    expect(r.stdout).not.toContain('WRITABLE');
    expect(r.stdout).not.toContain('OVERWRITTEN');
    // `env` printed the whole environment: no value in it.
    expect(r.stdout.split('\n').slice(4).join('\n')).not.toContain(VALUE);
    expect(await secretVolumes()).toEqual([]);
  });

  it('keeps values out of env, labels and the container layer; removes the volume with the container', async () => {
    const payload = buildCreatePayload(inst('replica', { command: ['sleep', '3600'], secrets: ['api-key'] }), ctx());
    expect(JSON.stringify(payload.body)).not.toContain(VALUE);
    const id = await port.create(payload);
    await port.start(id);
    const info = await docker.getContainer(id).inspect();
    expect(JSON.stringify(info)).not.toContain(VALUE);
    expect(JSON.stringify(info.Config.Labels)).not.toContain(VALUE);
    expect(info.Config.Labels['machete.secrets']).toMatch(/^[0-9a-f]{64}$/);
    const m = info.Mounts.find((x) => x.Destination === '/run/secrets');
    expect(m).toMatchObject({ Type: 'volume', RW: false, Name: `${payload.name}-secrets` });
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    // The layer holds the empty mountpoint Docker creates, never a file under it.
    const changes = ((await docker.getContainer(id).changes()) ?? []) as { Path: string }[];
    expect(changes.filter((c) => c.Path.startsWith('/run/secrets/'))).toEqual([]);
    const [vol] = await secretVolumes();
    expect(vol?.Labels).toMatchObject({ 'machete.host': hostId, [SECRETS_OF_LABEL]: payload.name });
    // No helper survives a create.
    expect(await docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`, 'machete.role=secrets-helper'] } })).toEqual([]);

    await port.remove(id);
    expect(await secretVolumes()).toEqual([]);
    await expect(docker.getVolume(`${payload.name}-secrets`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses an instance whose named secret did not arrive, naming the index only', () => {
    expect(() => buildCreatePayload(inst('replica', { secrets: ['api-key', 'missing'] }), ctx())).toThrow(PolicyRefusal);
    expect(() => buildCreatePayload(inst('replica', { secrets: ['api-key', 'missing'] }), ctx())).toThrow('secrets[1] is not available on this host');
    expect(() => buildCreatePayload(inst('replica', { secrets: ['api-key'] }, null), ctx())).toThrow('secrets[0]');
  });

  it('sweeps a dangling secrets volume and an old helper a crash left behind', async () => {
    const name = `machete-orphan-${randomUUID().slice(0, 8)}-secrets`;
    await docker.createVolume({ Name: name, Labels: { 'machete.host': hostId, [SECRETS_OF_LABEL]: 'gone' } });
    expect((await secretVolumes()).map((v) => v.Name)).toContain(name);
    expect(await port.sweepSecrets!(hostId)).toBeGreaterThanOrEqual(1);
    expect((await secretVolumes()).map((v) => v.Name)).not.toContain(name);

    // A helper that outlived a crash: left alone while young (a create may be using it), removed once old.
    const helperLabels = { 'machete.host': hostId, 'machete.role': 'secrets-helper' };
    const helper = await docker.createContainer({ Image: image, Entrypoint: ['/never'], Labels: helperLabels, HostConfig: { NetworkMode: 'none' } });
    const helpers = async () => docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`, 'machete.role=secrets-helper'] } });
    await sweepSecrets(docker, hostId, () => AbortSignal.timeout(10_000));
    expect((await helpers()).map((h) => h.Id)).toEqual([helper.id]);
    await sweepSecrets(docker, hostId, () => AbortSignal.timeout(10_000), Date.now() + 120_000);
    expect(await helpers()).toEqual([]);
  });
});

describe('resolved mounts on a real engine', () => {
  it('mounts the real path of a symlinked source, not the string it was given', async () => {
    mkdirSync(path.join(dir, 'real', 'data'), { recursive: true });
    symlinkSync(path.join(dir, 'real', 'data'), path.join(dir, 'link'));
    const payload = buildCreatePayload(inst('replica', { command: ['sleep', '3600'], mounts: [{ source: path.join(dir, 'link'), target: '/data' }] }, null), ctx(`${dir}:ro`));
    const id = await port.create(payload);
    const info = await docker.getContainer(id).inspect();
    expect(info.Mounts.find((m) => m.Destination === '/data')).toMatchObject({ Type: 'bind', Source: path.join(dir, 'real', 'data'), RW: false });
    await port.remove(id);
  });

  it('refuses to hand over a container when a directory of the resolved path was swapped for a symlink', async () => {
    mkdirSync(path.join(dir, 'swap', 'sub'), { recursive: true });
    mkdirSync(path.join(dir, 'elsewhere', 'sub'), { recursive: true });
    const payload = buildCreatePayload(inst('replica', { command: ['sleep', '3600'], mounts: [{ source: path.join(dir, 'swap', 'sub'), target: '/data' }] }, null), ctx(`${dir}:ro`));
    // The attacker's move between resolution and mount: the checked directory becomes a symlink.
    renameSync(path.join(dir, 'swap'), path.join(dir, 'swap-old'));
    symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'swap'));
    await expect(port.create(payload)).rejects.toThrow(/replaced by a symlink/);
    expect(await docker.listContainers({ all: true, filters: { name: [payload.name] } })).toEqual([]);
  });
});
