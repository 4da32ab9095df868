import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import { parseAllowedMounts } from '../policy/mounts.ts';
import { createDockerodePort, dockerOptionsFrom, engineEventFrom, exitCodeFromStatus, lineSplitter } from './dockerode.ts';
import { buildCreatePayload } from './payload.ts';
import type { DockerPort, EngineEvent } from './port.ts';

describe('dockerode port helpers', () => {
  it.each([
    ['Exited (137) 3 seconds ago', 137],
    ['Exited (0) About a minute ago', 0],
    ['Up 2 seconds', null],
    ['Created', null],
    ['', null],
  ])('reads the exit code of %j as %s', (status, code) => {
    expect(exitCodeFromStatus(status)).toBe(code);
  });

  it('reassembles event lines split across chunks, including split UTF-8', () => {
    const lines: string[] = [];
    const feed = lineSplitter((l) => lines.push(l));
    const bytes = Buffer.from('{"a":"é"}\n\n{"b":2}\n{"c"', 'utf8');
    for (let i = 0; i < bytes.length; i += 3) feed(bytes.subarray(i, i + 3));
    feed(':3}\n');
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}', '{"c":3}']);
  });

  it('keeps container events and skips anything malformed', () => {
    const line = JSON.stringify({ Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { 'machete.instance': 'i1' } } });
    expect(engineEventFrom(line)).toEqual({ containerId: 'abc', action: 'die', instanceId: 'i1' });
    expect(engineEventFrom('{not json')).toBeUndefined();
    expect(engineEventFrom('null')).toBeUndefined();
    expect(engineEventFrom(JSON.stringify({ Type: 'image', Action: 'pull', Actor: { ID: 'x' } }))).toBeUndefined();
  });

  it('maps DOCKER_HOST values to connection options', () => {
    expect(dockerOptionsFrom({ tlsVerify: false })).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(dockerOptionsFrom({ dockerHost: 'unix:///tmp/x/d.sock', tlsVerify: false })).toEqual({ socketPath: '/tmp/x/d.sock' });
    expect(dockerOptionsFrom({ dockerHost: 'tcp://127.0.0.1:2375', tlsVerify: false })).toEqual({ host: '127.0.0.1', port: 2375 });
    expect(() => dockerOptionsFrom({ dockerHost: 'tcp://10.0.0.5:2375', tlsVerify: false })).toThrow('DOCKER_TLS_VERIFY');
    expect(() => dockerOptionsFrom({ dockerHost: 'ssh://me@host', tlsVerify: false })).toThrow('only unix:// and tcp://');
    expect(() => dockerOptionsFrom({ dockerHost: 'unix://relative', tlsVerify: false })).toThrow('absolute');
    expect(() => dockerOptionsFrom({ dockerHost: 'tcp://dind:2376', tlsVerify: true })).toThrow('DOCKER_CERT_PATH');
  });

  it('reads ca.pem, cert.pem and key.pem from the cert directory for TLS', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mch-certs-'));
    try {
      for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(path.join(dir, f), `fake ${f}`);
      expect(dockerOptionsFrom({ dockerHost: 'tcp://dind', tlsVerify: true, certPath: dir })).toEqual({
        host: 'dind',
        port: 2376,
        tls: { ca: Buffer.from('fake ca.pem'), cert: Buffer.from('fake cert.pem'), key: Buffer.from('fake key.pem') },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dockerode port against a real engine', () => {
  const socketPath = inject('dockerSocket');
  const image = inject('testImage');
  const hostId = `t-${randomUUID().slice(0, 12)}`;
  const docker = new Docker({ socketPath });
  let port: DockerPort;
  let mountDir: string;
  const created: string[] = [];

  beforeAll(() => {
    port = createDockerodePort({ socketPath });
    mountDir = mkdtempSync(path.join(tmpdir(), 'mch-mnt-'));
  });

  afterAll(async () => {
    await Promise.allSettled(created.map((id) => docker.getContainer(id).remove({ force: true })));
    rmSync(mountDir, { recursive: true, force: true });
  });

  it('reports capacity and its endpoint, and tells present images from missing ones', async () => {
    const info = await port.info();
    expect(info.endpoint).toBe(socketPath);
    expect(info.cpus).toBeGreaterThan(0);
    expect(info.memoryMb).toBeGreaterThan(0);
    expect(await port.imageExists(image)).toBe(true);
    expect(await port.imageExists('machete/not-here:nope')).toBe(false);
  });

  it('runs a container with the secure defaults through its whole lifecycle', async () => {
    const events: EngineEvent[] = [];
    const errors: Error[] = [];
    const unsubscribe = port.events(hostId, (e) => events.push(e), (e) => errors.push(e));
    try {
      const spec = ToolSpecSchema.parse({
        image,
        command: ['sleep', '300'],
        resources: { cpus: 0.25, memoryMb: 32, pids: 16 },
        mounts: [{ source: mountDir, target: '/data', readOnly: true }],
      });
      const payload = buildCreatePayload(
        { id: 'inst-1', tool: 'sleeper', version: 3, kind: 'replica', revision: 9, desired: 'running', spec },
        { hostId, allowedMounts: parseAllowedMounts(`${mountDir}:ro`), engineEndpoint: socketPath },
      );
      const id = await port.create(payload);
      created.push(id);
      await port.start(id);

      const running = await port.list(hostId);
      expect(running).toHaveLength(1);
      expect(running[0]).toMatchObject({ id, name: 'machete-sleeper-inst-1-v3', instanceId: 'inst-1', tool: 'sleeper', version: 3, revision: 9, kind: 'replica', state: 'running', exitCode: null });
      expect(running[0]?.labels).toMatchObject({ 'machete.managed': 'true', 'machete.host': hostId });

      const hc = (await docker.getContainer(id).inspect()).HostConfig as Docker.HostConfig & Record<string, unknown>;
      expect(hc.CapDrop).toEqual(['ALL']);
      expect(hc.SecurityOpt).toContain('no-new-privileges:true');
      expect(hc.Privileged).toBe(false);
      expect(hc.ReadonlyRootfs).toBe(true);
      expect(hc.Tmpfs).toEqual({ '/tmp': 'rw,noexec,nosuid,nodev,size=64m' });
      expect(hc.Memory).toBe(32 * 1024 * 1024);
      expect(hc.MemorySwap).toBe(32 * 1024 * 1024);
      expect(hc.NanoCpus).toBe(250_000_000);
      expect(hc.PidsLimit).toBe(16);
      expect(hc.NetworkMode).toBe('none');
      expect(hc.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } });
      expect(hc.RestartPolicy).toMatchObject({ Name: 'no' });
      expect(hc.Init).toBe(true);
      expect(hc.Mounts).toEqual([{ Type: 'bind', Source: mountDir, Target: '/data', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } }]);
      expect(hc.Binds ?? []).toEqual([]);

      await port.stop(id, 5);
      const exited = await port.list(hostId);
      expect(exited[0]).toMatchObject({ id, state: 'exited' });
      expect(exited[0]?.exitCode).toEqual(expect.any(Number));
      await port.stop(id, 5); // already stopped: not an error

      await vi.waitFor(() => expect(events.some((e) => e.containerId === id && (e.action === 'start' || e.action === 'die'))).toBe(true), { timeout: 10_000 });
      expect(events.filter((e) => e.containerId === id).every((e) => e.instanceId === 'inst-1')).toBe(true);

      await port.remove(id);
      await port.remove(id); // already gone: not an error
      expect(await port.list(hostId)).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      unsubscribe();
    }
  });

  it('sees only its own host, and skips containers whose labels are malformed', async () => {
    const otherHost = `t-${randomUUID().slice(0, 12)}`;
    const bad = await docker.createContainer({
      Image: image,
      Cmd: ['true'],
      Labels: { 'machete.managed': 'true', 'machete.host': otherHost, 'machete.tool': 'x', 'machete.instance': 'i', 'machete.kind': 'bogus', 'machete.revision': '1', 'machete.version': '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    created.push(bad.id);
    expect(await port.list(otherHost)).toEqual([]);
    expect(await port.list(hostId)).toEqual([]);
  });

  it('stops and removes containers that do not exist without error', async () => {
    await expect(port.stop('0123456789ab', 1)).resolves.toBeUndefined();
    await expect(port.remove('0123456789ab')).resolves.toBeUndefined();
  });

  it('reports an unreachable engine once through onError', async () => {
    const errors: Error[] = [];
    const unreachable = createDockerodePort({ socketPath: path.join(mountDir, 'missing.sock') });
    const unsubscribe = unreachable.events(hostId, () => {}, (e) => errors.push(e));
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toHaveLength(1);
    unsubscribe();
  });

  it('stops delivering events once unsubscribed', async () => {
    const errors: Error[] = [];
    const unsubscribe = port.events(hostId, () => {}, (e) => errors.push(e));
    await new Promise((r) => setTimeout(r, 100));
    unsubscribe();
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toEqual([]);
  });
});
