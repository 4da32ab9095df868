import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import { auditEngine } from './auditContainers.ts';
import { createDockerodePort } from './dockerode.ts';
import { buildCreatePayload } from './payload.ts';

// The live audit against the real engine: every container is inspected, managed or not.
// Nothing here is started: the risky settings only need to exist in `docker inspect`.
describe('auditEngine (real engine)', () => {
  const socketPath = inject('dockerSocket');
  const image = inject('testImage');
  const docker = new Docker({ socketPath });
  const tag = `audit-${randomUUID().slice(0, 8)}`;
  const hostId = tag;
  const created: string[] = [];

  afterAll(async () => {
    await Promise.all(created.map((id) => docker.getContainer(id).remove({ force: true }).catch(() => {})));
  });

  async function raw(name: string, HostConfig: Docker.HostConfig): Promise<string> {
    const c = await docker.createContainer({ name: `${tag}-${name}`, Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none', ...HostConfig } });
    created.push(c.id);
    return c.id;
  }

  it('reports an unmanaged risky container rule by rule, and nothing for a hardened one or for MACHETE’s own', async () => {
    await raw('risky', {
      Privileged: true,
      Binds: ['/var/run/docker.sock:/var/run/docker.sock:ro'],
      PidMode: 'host',
      CapAdd: ['SYS_ADMIN'],
      SecurityOpt: ['seccomp=unconfined'],
    });
    await raw('hardened', { Memory: 64 << 20, NanoCpus: 250_000_000, SecurityOpt: ['no-new-privileges:true'], CapDrop: ['ALL'], ReadonlyRootfs: true });
    const payload = buildCreatePayload(
      { id: `i${randomUUID().slice(0, 8)}`, tool: 'audited', version: 1, kind: 'replica', revision: 1, desired: 'running', spec: ToolSpecSchema.parse({ image, command: ['sleep', '60'] }) },
      { hostId, allowedMounts: [], engineEndpoint: socketPath, nameSuffix: randomUUID().slice(0, 8) },
    );
    const managedId = await createDockerodePort({ socketPath }).create(payload);
    created.push(managedId);

    const report = (await auditEngine(docker)).filter((a) => created.includes(a.container.id));
    expect(report).toHaveLength(3);
    const byName = new Map(report.map((a) => [a.container.name, a]));
    const risky = byName.get(`${tag}-risky`)!;
    expect(risky.container).toMatchObject({ managed: false, running: false, privileged: true, pidMode: 'host' });
    expect(risky.findings.map((f) => f.rule).sort()).toEqual(['cpu-limit', 'dangerous-capability', 'docker-socket', 'host-namespace', 'memory-limit', 'no-new-privileges', 'privileged', 'unconfined-profile']);
    expect(byName.get(`${tag}-hardened`)!.findings).toEqual([]);
    const managed = report.find((a) => a.container.id === managedId)!;
    expect(managed.container.managed).toBe(true);
    expect(managed.findings).toEqual([]);
  });
});
