import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ComposeLoadError, interpolate, loadCompose } from './load.ts';
import { normalizeHostPath, socketReason } from './mounts.ts';
import { auditCompose, isDindImage, isSecretName, type RuleId } from './rules.ts';

/** A service that passes every rule; each test breaks exactly one thing. */
const GOOD = {
  image: 'example/app:1',
  mem_limit: '256m',
  cpus: 0.5,
  security_opt: ['no-new-privileges:true'],
  networks: ['a'],
};
const file = (services: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  YAML.stringify({ services, networks: { a: {}, b: {}, c: {} }, ...extra });
const one = (svc: Record<string, unknown>, extra: Record<string, unknown> = {}) => auditCompose(file({ s: { ...GOOD, ...svc } }, extra));
const rules = (svc: Record<string, unknown>, extra: Record<string, unknown> = {}): RuleId[] => one(svc, extra).map((f) => f.rule);

describe('a hardened service', () => {
  it('has no findings', () => {
    expect(one({})).toEqual([]);
  });
});

describe('docker-socket', () => {
  it.each([
    ['short syntax', ['/var/run/docker.sock:/var/run/docker.sock']],
    ['short syntax read-only (still full control)', ['/var/run/docker.sock:/sock:ro']],
    ['/run/docker.sock', ['/run/docker.sock:/x']],
    ['long syntax', [{ type: 'bind', source: '/var/run/docker.sock', target: '/s' }]],
    ['long syntax without type', [{ source: '/run/docker.sock', target: '/s' }]],
    ['parent directory /var/run', ['/var/run:/host-run']],
    ['parent directory /run with trailing slash', ['/run/:/host-run:ro']],
    ['the host root', ['/:/host']],
    ['containerd socket', ['/run/containerd/containerd.sock:/c.sock']],
    ['containerd directory', ['/var/run/containerd:/c']],
    ['podman socket', ['/run/podman/podman.sock:/p.sock']],
    ['rootless docker socket', ['/run/user/1000/docker.sock:/d.sock']],
    ['rootless runtime dir', ['/run/user/1000:/xdg']],
    ['dot segments', ['/var/./run/../run//docker.sock:/s']],
    ['through /proc/1/root', ['/proc/1/root/var/run/docker.sock:/s']],
    ['through /proc/self/root (the host root)', ['/proc/self/root:/host']],
    ['any other .sock file', ['/srv/balena/balena-engine.sock:/s']],
    ['a relative docker.sock', ['./docker.sock:/s']],
    ['Windows named pipe', ['//./pipe/docker_engine://./pipe/docker_engine']],
    ['npipe long syntax', [{ type: 'npipe', source: '\\\\.\\pipe\\docker_engine', target: '\\\\.\\pipe\\docker_engine' }]],
  ])('%s', (_, volumes) => {
    const f = one({ volumes });
    expect(f.map((x) => x.rule)).toEqual(['docker-socket']);
    expect(f[0]!.severity).toBe('high');
  });

  it('sees a socket hidden in a variable default', () => {
    expect(rules({ volumes: ['${SOCK:-/var/run/docker.sock}:/s'] })).toEqual(['docker-socket']);
  });

  it('sees a named volume that the local driver binds to /var/run', () => {
    const extra = { volumes: { run: { driver: 'local', driver_opts: { type: 'none', o: 'bind', device: '/var/run' } } } };
    expect(rules({ volumes: ['run:/host-run'] }, extra)).toEqual(['docker-socket']);
    expect(rules({ volumes: [{ type: 'volume', source: 'run', target: '/r' }] }, extra)).toEqual(['docker-socket']);
  });

  it('leaves ordinary binds, named volumes, anonymous volumes and tmpfs alone', () => {
    const extra = { volumes: { data: {}, nfs: { driver_opts: { type: 'nfs', o: 'addr=1.2.3.4', device: ':/export' } } } };
    const volumes = ['data:/data', 'nfs:/nfs', '/var/lib/app:/app', '/run-data/x:/x', '/var/runner:/r', './config:/config:ro', '/cache', { type: 'tmpfs', target: '/tmp' }];
    expect(rules({ volumes }, extra)).toEqual([]);
  });

  it('normalizes paths before comparing segment by segment', () => {
    expect(normalizeHostPath('/var//run/./docker.sock/')).toBe('/var/run/docker.sock');
    expect(normalizeHostPath('/proc/1/root')).toBe('/');
    expect(socketReason('/var/run-docker')).toBeNull();
    expect(socketReason('/var/run')).toMatch(/directory holding the engine socket/);
  });
});

describe('privileged', () => {
  it('flags a privileged service that is not a DinD engine', () => {
    expect(rules({ privileged: true })).toEqual(['privileged']);
    expect(rules({ privileged: 'true' })).toEqual(['privileged']);
    expect(rules({ privileged: true, image: 'evil/docker:dind' })).toEqual(['privileged']);
    expect(rules({ privileged: true, image: 'docker:27-cli' })).toEqual(['privileged']);
    const { image: _, ...built } = GOOD;
    expect(auditCompose(file({ s: { ...built, build: '.', privileged: true } })).map((f) => f.rule)).toEqual(['privileged']);
  });

  it('allows the official DinD engine image in its spellings', () => {
    for (const image of ['docker:dind', 'docker:27-dind', 'docker:dind-rootless', 'docker.io/library/docker:27.3-dind', `docker:dind@sha256:${'a'.repeat(64)}`]) {
      expect(isDindImage(image), image).toBe(true);
      expect(rules({ privileged: true, image })).toEqual([]);
    }
    expect(rules({ privileged: false })).toEqual([]);
  });
});

describe('inline-secret', () => {
  it('flags literal values of secret-looking names, in map and list form', () => {
    expect(rules({ environment: { POSTGRES_PASSWORD: 'hunter2' } })).toEqual(['inline-secret']);
    expect(rules({ environment: ['GITHUB_TOKEN=ghp_x'] })).toEqual(['inline-secret']);
    expect(rules({ environment: { AWS_SECRET_ACCESS_KEY: 'x', jwtSecret: 'y', API_KEY: 123 } })).toEqual(['inline-secret', 'inline-secret', 'inline-secret']);
    expect(rules({ environment: { MACHETE_JOIN_TOKEN: '${JOIN:-eyJ}' } })).toEqual(['inline-secret']);
  });

  it('flags a URL that carries a password, whatever the name', () => {
    expect(rules({ environment: { DATABASE_URL: 'postgres://machete:pw@db:5432/machete' } })).toEqual(['inline-secret']);
    expect(rules({ environment: ['UPSTREAM=https://:tok@example.com'] })).toEqual(['inline-secret']);
  });

  it('sees a secret merged in from an x- anchor', () => {
    const text = `x-env: &env\n  DB_PASSWORD: hunter2\nservices:\n  s:\n    image: a\n    mem_limit: 1g\n    cpus: 1\n    security_opt: [no-new-privileges:true]\n    networks: [a]\n    environment:\n      <<: *env\n      OTHER: 1\nnetworks: {a: {}}\n`;
    expect(auditCompose(text).map((f) => f.rule)).toEqual(['inline-secret']);
  });

  it('leaves *_FILE pointers, passthroughs, empty values and non-secret names alone', () => {
    const environment = { SECRET_KEY_FILE: '/run/secrets/k', POSTGRES_PASSWORD_FILE: '/run/secrets/p', TOKEN_TTL: '3600', KEYBOARD: 'us', DATABASE_URL: 'postgres://db/machete', PASSWORD: '', MACHETE_JOIN_TOKEN: null };
    expect(rules({ environment })).toEqual([]);
    expect(rules({ environment: ['API_TOKEN', 'MACHETE_JOIN_TOKEN_FILE=/run/secrets/j'] })).toEqual([]);
    expect(isSecretName('secretKeyFile')).toBe(false);
    expect(isSecretName('db.password')).toBe(true);
  });

  it('never puts the value in the message', () => {
    expect(one({ environment: { DB_PASSWORD: 'hunter2' } })[0]!.message).not.toContain('hunter2');
  });
});

describe('memory-limit and cpu-limit', () => {
  it('flags each missing limit', () => {
    expect(rules({ mem_limit: undefined })).toEqual(['memory-limit']);
    expect(rules({ cpus: undefined })).toEqual(['cpu-limit']);
    expect(rules({ mem_limit: undefined, cpus: undefined })).toEqual(['memory-limit', 'cpu-limit']);
  });

  it('accepts deploy.resources.limits instead', () => {
    expect(rules({ mem_limit: undefined, cpus: undefined, deploy: { resources: { limits: { memory: '512M', cpus: '0.25' } } } })).toEqual([]);
  });

  it('does not count reservations or zero as a limit', () => {
    expect(rules({ mem_limit: undefined, cpus: undefined, deploy: { resources: { reservations: { memory: '512M', cpus: '1' } } } })).toEqual(['memory-limit', 'cpu-limit']);
    expect(rules({ mem_limit: '0', cpus: 0 })).toEqual(['memory-limit', 'cpu-limit']);
    expect(rules({ mem_limit: '-1' })).toEqual(['memory-limit']);
  });
});

describe('no-new-privileges', () => {
  it('flags it missing or turned off', () => {
    expect(rules({ security_opt: undefined })).toEqual(['no-new-privileges']);
    expect(rules({ security_opt: ['no-new-privileges:false'] })).toEqual(['no-new-privileges']);
    expect(rules({ security_opt: ['no-new-privileges:true', 'no-new-privileges:false'] })).toEqual(['no-new-privileges']);
  });

  it('accepts the spellings Docker accepts', () => {
    for (const o of ['no-new-privileges', 'no-new-privileges:true', 'no-new-privileges=true', 'NO-NEW-PRIVILEGES:TRUE']) expect(rules({ security_opt: [o] }), o).toEqual([]);
  });
});

describe('host-namespace', () => {
  it('flags host network, pid, ipc, uts, userns and cgroup', () => {
    expect(rules({ network_mode: 'host', networks: undefined })).toEqual(['host-namespace']);
    expect(rules({ pid: 'host' })).toEqual(['host-namespace']);
    expect(rules({ ipc: 'host', uts: 'host', userns_mode: 'host', cgroup: 'host' })).toEqual(['host-namespace', 'host-namespace', 'host-namespace', 'host-namespace']);
  });

  it('leaves private and container-shared namespaces alone', () => {
    expect(rules({ network_mode: 'none', networks: undefined, ipc: 'private', pid: 'service:other' })).toEqual([]);
  });
});

describe('dangerous-capability', () => {
  it('flags dangerous caps in any spelling', () => {
    expect(rules({ cap_add: ['SYS_ADMIN'] })).toEqual(['dangerous-capability']);
    expect(rules({ cap_add: ['cap_sys_ptrace', 'ALL'] })).toEqual(['dangerous-capability', 'dangerous-capability']);
  });

  it('leaves harmless ones alone', () => {
    expect(rules({ cap_add: ['NET_BIND_SERVICE', 'CHOWN'], cap_drop: ['ALL'] })).toEqual([]);
  });
});

describe('unconfined-profile', () => {
  it('flags seccomp/apparmor unconfined and label disable', () => {
    expect(rules({ security_opt: ['no-new-privileges:true', 'seccomp:unconfined', 'apparmor=unconfined', 'label:disable'] })).toEqual(['unconfined-profile', 'unconfined-profile', 'unconfined-profile']);
  });
});

describe('network-segmentation', () => {
  it('flags services on the default network, implicit or named', () => {
    expect(rules({ networks: undefined })).toEqual(['network-segmentation']);
    expect(rules({ networks: ['default', 'a'] })).toEqual(['network-segmentation']);
  });

  it('flags named networks that still put every service on one segment', () => {
    const f = auditCompose(file({ x: { ...GOOD, networks: ['a', 'b'] }, y: { ...GOOD, networks: { a: {} } }, z: { ...GOOD, networks: ['a', 'c'] } }));
    expect(f.map((x) => [x.rule, x.service])).toEqual([['network-segmentation', '*']]);
  });

  it('accepts segmented services and network_mode none', () => {
    const f = auditCompose(file({ x: { ...GOOD, networks: ['a', 'b'] }, y: { ...GOOD, networks: ['b'] }, z: { ...GOOD, networks: ['c'] }, w: { ...GOOD, networks: undefined, network_mode: 'none' } }));
    expect(f).toEqual([]);
  });
});

describe('loading', () => {
  it('interpolates like compose', () => {
    const env = { A: 'a', E: '' };
    expect(interpolate('${A}-${B:-b}-${E:-e}-${E-x}-$A-$$A-${A:+alt}-${B:+alt}-${B?must}', env)).toBe('a-b-e--a-$A-alt--');
  });

  it('refuses what is not a compose file', () => {
    expect(() => loadCompose('a: [')).toThrow(ComposeLoadError);
    expect(() => loadCompose('- 1')).toThrow(/not a compose file/);
    expect(() => loadCompose('services: {}')).toThrow(/no services/);
  });
});
