import { describe, expect, it } from 'vitest';
import { auditContainer, ContainerFactsSchema, type ContainerFacts } from './containerAudit.ts';

/** A container that passes every rule; each case changes one thing. */
const GOOD: ContainerFacts = {
  id: 'c1',
  name: 'tool-1',
  image: 'busybox',
  managed: true,
  running: true,
  privileged: false,
  mounts: [{ type: 'volume', source: '/var/lib/docker/volumes/x/_data', destination: '/data' }],
  networkMode: 'none',
  pidMode: '',
  ipcMode: 'private',
  utsMode: '',
  usernsMode: '',
  memoryBytes: 64 << 20,
  nanoCpus: 500_000_000,
  cpuQuota: 0,
  capAdd: [],
  securityOpt: ['no-new-privileges'],
};
const rules = (c: Partial<ContainerFacts>) => auditContainer({ ...GOOD, ...c }).map((f) => f.rule);

describe('live container audit rules', () => {
  it('passes a hardened container, and the facts schema accepts it', () => {
    expect(rules({})).toEqual([]);
    expect(ContainerFactsSchema.parse(GOOD)).toEqual(GOOD);
  });

  it('flags privileged containers', () => {
    expect(rules({ privileged: true })).toEqual(['privileged']);
  });

  it('flags bind mounts of engine sockets and of directories holding them, however spelled', () => {
    for (const source of ['/var/run/docker.sock', '/run/docker.sock', '/var/run', '/run/containerd', '/', '/proc/1/root/run', '/run//docker.sock/']) {
      expect(rules({ mounts: [{ type: 'bind', source, destination: '/x' }] }), source).toEqual(['docker-socket']);
    }
    // A named volume's data dir is not a host path the container chose.
    expect(rules({ mounts: [{ type: 'volume', source: '/var/lib/docker/volumes/run/_data', destination: '/var/run' }] })).toEqual([]);
    expect(rules({ mounts: [{ type: 'bind', source: '/srv/data', destination: '/var/run/docker.sock' }] })).toEqual([]);
  });

  it('flags host namespaces', () => {
    expect(rules({ networkMode: 'host', pidMode: 'host', ipcMode: 'host', utsMode: 'host', usernsMode: 'host' })).toEqual(Array(5).fill('host-namespace'));
    expect(rules({ networkMode: 'container:abc', pidMode: 'container:abc', ipcMode: 'shareable' })).toEqual([]);
  });

  it('flags missing limits (zero is no limit; a CPU quota counts)', () => {
    expect(rules({ memoryBytes: 0 })).toEqual(['memory-limit']);
    expect(rules({ nanoCpus: 0 })).toEqual(['cpu-limit']);
    expect(rules({ nanoCpus: 0, cpuQuota: 50_000 })).toEqual([]);
    expect(rules({ nanoCpus: 0, cpuQuota: -1 })).toEqual(['cpu-limit']);
  });

  it('flags dangerous capabilities in any spelling', () => {
    expect(rules({ capAdd: ['CAP_SYS_ADMIN', 'net_admin', 'CHOWN'] })).toEqual(['dangerous-capability', 'dangerous-capability']);
  });

  it('flags no-new-privileges missing or turned off, and unconfined profiles', () => {
    expect(rules({ securityOpt: [] })).toEqual(['no-new-privileges']);
    expect(rules({ securityOpt: ['no-new-privileges=false'] })).toEqual(['no-new-privileges']);
    expect(rules({ securityOpt: ['no-new-privileges:true', 'seccomp=unconfined', 'apparmor:unconfined'] })).toEqual(['unconfined-profile', 'unconfined-profile']);
  });

  it('names the container in every finding', () => {
    expect(auditContainer({ ...GOOD, privileged: true, memoryBytes: 0 }).map((f) => f.container)).toEqual(['tool-1', 'tool-1']);
  });
});
