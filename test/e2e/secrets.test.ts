import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadAgentConfig } from '../../agent/src/config.ts';
import { startAgent } from '../../agent/src/main.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// Secrets and symlinked mounts end to end: API → control plane → WebSocket → agent → real dockerd.
const VALUE = 'e2e-secret-3b9f-value';
const ROTATED = 'e2e-rotated-8c21-value';
let cluster: TestCluster;
let docker: Docker;
let hostId = '';
const image = () => inject('testImage');
const mountRoot = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'machete-e2e-mnt-')));

const instancesOf = async (tool: string) => (await cluster.api('GET', `/api/v1/instances?tool=${tool}`)).body as { id: string; state: string; containerId: string | null; reason: string | null }[];
const secretVolumes = async () => (await docker.listVolumes({ filters: { label: [`machete.host=${hostId}`, 'machete.secrets-of'] } })).Volumes ?? [];

/** A file's content read out of a container through the Engine API (`docker cp`), not through the tool. */
async function readFile(containerId: string, file: string): Promise<string> {
  const stream = (await docker.getContainer(containerId).getArchive({ path: file })) as unknown as Readable;
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  const tar = Buffer.concat(chunks);
  const size = parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8);
  return tar.subarray(512, 512 + size).toString('utf8');
}

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  docker = cluster.docker;
  await cluster.startServer();
  // An agent with an allowlisted directory (the cluster helper's agent allows no mounts).
  mkdirSync(path.join(mountRoot, 'allow', 'data'), { recursive: true });
  symlinkSync('/etc', path.join(mountRoot, 'allow', 'etc-link'));
  const config = loadAgentConfig(
    { DOCKER_HOST: `unix://${inject('dockerSocket')}`, MACHETE_LOG_LEVEL: 'silent', MACHETE_HOST_NAME: 'secrets-host', MACHETE_ALLOWED_MOUNTS: `${mountRoot}/allow:ro` },
    { server: cluster.url, stateDir: path.join(cluster.dir, 'agent'), joinToken: await cluster.server!.mintJoinToken() },
  );
  cluster.agent = await startAgent(config, { log: createLogger('silent') });
  hostId = cluster.agent.hostId;
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.status === 'ready', 'host ready');
  expect((await cluster.api('PUT', '/api/v1/secrets/api-key', { value: VALUE })).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await cluster?.close();
  rmSync(mountRoot, { recursive: true, force: true });
});

describe('secrets on a real engine, end to end', () => {
  it('lets an invocation read /run/secrets/NAME and leaves no volume behind', async () => {
    await cluster.api('PUT', '/api/v1/tools/cat-secret', { image: image(), command: ['cat', '/run/secrets/api-key'], secrets: ['api-key'], timeoutSeconds: 20 });
    const r = await cluster.api('POST', '/api/v1/tools/cat-secret/invoke', {});
    expect(r.body).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: VALUE });
    // The result may be answered before the container's removal has finished.
    await waitFor(async () => (await secretVolumes()).length === 0, 'the invocation volume removed');
  });

  it('gives a replica the file but no value in env or labels, rolls it on rotation, and removes the volume with it', async () => {
    await cluster.api('PUT', '/api/v1/tools/holder', { image: image(), command: ['sleep', '3600'], secrets: ['api-key'] });
    await cluster.api('PUT', '/api/v1/tools/holder/deployment', { replicas: 1 });
    const [first] = await waitFor(async () => {
      const l = await instancesOf('holder');
      return l[0]?.state === 'running' && l[0].containerId ? l : null;
    }, 'holder running');
    const info = await docker.getContainer(first!.containerId!).inspect();
    expect(JSON.stringify(info.Config.Env)).not.toContain(VALUE);
    expect(JSON.stringify(info.Config.Labels)).not.toContain(VALUE);
    expect(JSON.stringify(info)).not.toContain(VALUE);
    expect(info.Mounts.find((m) => m.Destination === '/run/secrets')).toMatchObject({ Type: 'volume', RW: false });
    expect(await readFile(first!.containerId!, '/run/secrets/api-key')).toBe(VALUE);
    expect(await secretVolumes()).toHaveLength(1);

    expect((await cluster.api('PUT', '/api/v1/secrets/api-key', { value: ROTATED })).body.version).toBe(2);
    const [rolled] = await waitFor(async () => {
      const l = await instancesOf('holder');
      return l[0]?.state === 'running' && l[0].containerId && l[0].containerId !== first!.containerId ? l : null;
    }, 'holder replaced after rotation');
    expect(await readFile(rolled!.containerId!, '/run/secrets/api-key')).toBe(ROTATED);
    await waitFor(async () => (await secretVolumes()).length === 1, 'the old volume removed with the old container');

    await cluster.api('PUT', '/api/v1/tools/holder/deployment', { replicas: 0 });
    await waitFor(async () => (await cluster.containers()).length === 0, 'container removed');
    await waitFor(async () => (await secretVolumes()).length === 0, 'volume removed with it');
  });
});

describe('secrets in warm sandboxes', () => {
  const THIRD = 'e2e-third-4e7a-value';
  const warmIds = async () =>
    new Set((await docker.listContainers({ filters: { label: ['machete.kind=warm', 'machete.tool=wsec', `machete.host=${hostId}`] } })).map((c) => c.Id));
  const ranIn = (stdout: string, pool: Set<string>) => [...pool].find((id) => id.startsWith(stdout.trim().split('\n')[0]!)) ?? null;

  it('serves the current value from a warm sandbox, and never a sandbox filled before a rotation', async () => {
    await cluster.api('PUT', '/api/v1/tools/wsec', { image: image(), command: ['sh', '-c'], secrets: ['api-key'], warm: 1, timeoutSeconds: 20 });
    const before = await waitFor(async () => {
      const now = await warmIds();
      return now.size === 1 ? now : null;
    }, 'one warm sandbox', 30_000);
    const first = await cluster.api('POST', '/api/v1/tools/wsec/invoke', { args: ['cat /etc/hostname; cat /run/secrets/api-key'] });
    expect(first.body).toMatchObject({ status: 'succeeded' });
    expect(ranIn(first.body.stdout, before)).not.toBeNull();
    expect(first.body.stdout.trim().split('\n')[1]).toBe(ROTATED);

    const refilled = await waitFor(async () => {
      const now = await warmIds();
      return now.size === 1 && ![...now].some((id) => before.has(id)) ? now : null;
    }, 'refilled warm sandbox', 30_000);
    await cluster.api('PUT', '/api/v1/secrets/api-key', { value: THIRD });
    // Whatever serves it (a sandbox filled after the rotation, or a cold run), the value is the new one.
    const second = await cluster.api('POST', '/api/v1/tools/wsec/invoke', { args: ['cat /etc/hostname; cat /run/secrets/api-key'] });
    expect(second.body).toMatchObject({ status: 'succeeded' });
    expect(second.body.stdout.trim().split('\n')[1]).toBe(THIRD);
    expect(ranIn(second.body.stdout, refilled)).toBeNull();

    await cluster.api('DELETE', '/api/v1/tools/wsec');
    await waitFor(async () => (await warmIds()).size === 0, 'warm sandboxes removed', 30_000);
    await waitFor(async () => (await secretVolumes()).length === 0, 'their volumes removed');
  });
});

describe('symlinked mount sources, end to end (case 3)', () => {
  it('reports the instance failed when an allowlisted path is a symlink to /etc, and creates nothing', async () => {
    await cluster.api('PUT', '/api/v1/tools/linker', { image: image(), command: ['sleep', '3600'], mounts: [{ source: `${mountRoot}/allow/etc-link`, target: '/data' }] });
    await cluster.api('PUT', '/api/v1/tools/linker/deployment', { replicas: 1 });
    const [inst] = await waitFor(async () => {
      const l = await instancesOf('linker');
      return l[0]?.state === 'failed' ? l : null;
    }, 'linker failed');
    expect(inst!.reason).toMatch(/sensitive host path \(after resolving symlinks\)/);
    expect(inst!.reason).not.toContain(mountRoot);
    expect((await cluster.containers()).filter((c) => c.Labels['machete.tool'] === 'linker')).toEqual([]);
  });

  it('mounts the real path of an allowlisted symlink that stays inside the allowlist', async () => {
    symlinkSync(path.join(mountRoot, 'allow', 'data'), path.join(mountRoot, 'allow', 'data-link'));
    await cluster.api('PUT', '/api/v1/tools/linked', { image: image(), command: ['sleep', '3600'], mounts: [{ source: `${mountRoot}/allow/data-link`, target: '/data' }] });
    await cluster.api('PUT', '/api/v1/tools/linked/deployment', { replicas: 1 });
    const [inst] = await waitFor(async () => {
      const l = await instancesOf('linked');
      return l[0]?.state === 'running' && l[0].containerId ? l : null;
    }, 'linked running');
    const info = await docker.getContainer(inst!.containerId!).inspect();
    expect(info.Mounts.find((m) => m.Destination === '/data')).toMatchObject({ Type: 'bind', Source: path.join(mountRoot, 'allow', 'data'), RW: false });
  });
});
