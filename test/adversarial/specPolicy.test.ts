import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../apps/api/src/config.ts';
import { currentRevision } from '../../apps/api/src/services/revision.ts';
import { makeApi } from '../helpers/api.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { eventMark, eventsSince } from './helpers.ts';

// The tool-spec policy at the API (REJ of SECURITY-CASES 1, 2, 4–13, 15, 20, 27), with a real
// agent on a real engine running a deployed tool. Every hostile body is PUT twice: as a new tool
// (must stay 404) and as an update of the deployed tool `victim` (its version and container must
// stay). Each refusal must be a 400 naming the field, an audit event, and must send nothing to
// agents: the desired-state revision in the database, the revision the agent applied and the
// count of non-heartbeat frames the hub sent all stay the same. A valid update at the end proves
// those observations move when something IS sent.
const mountRoot = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'machete-specpolicy-')));
const A = path.join(mountRoot, 'allow'); // rw entry
const R = path.join(mountRoot, 'ro'); // ro entry
const ALLOWED = `${A}:rw,${R}:ro`;
const PUT_TOOL = 'PUT /api/v1/tools/:name';

let cluster: TestCluster;
let admin = '';
let victimContainer = '';
const image = () => inject('testImage');
const base = () => ({ image: image(), command: ['sleep', '3600'] });

beforeAll(async () => {
  mkdirSync(path.join(A, 'sub'), { recursive: true });
  mkdirSync(R, { recursive: true });
  const env: Record<string, string> = { MACHETE_RATE_LIMIT_PER_SECOND: '0' };
  const agentEnv: Record<string, string> = { MACHETE_HOST_NAME: 'specpolicy-host' };
  // The same list fleet-wide on the control plane (case 10 REJ) and on the agent. No rate limit: the tables are long.
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket'), env, agentEnv });
  // The cluster's own directory (it holds the agent's state, i.e. its credential) is allowlisted too,
  // on purpose: the agent must refuse to mount its state directory anyway (last test).
  env.MACHETE_ALLOWED_MOUNTS = agentEnv.MACHETE_ALLOWED_MOUNTS = `${ALLOWED},${cluster.dir}:rw`;
  await cluster.startServer();
  await cluster.startAgent();
  admin = await cluster.token('admin');
  const hostId = cluster.agent!.hostId;
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.status === 'ready', 'host ready');
  // `readOnly` left out on an rw entry: mounted read-only (case 10 INS below).
  expect((await cluster.api('PUT', '/api/v1/tools/victim', { ...base(), mounts: [{ source: A, target: '/data' }] })).status).toBe(201);
  expect((await cluster.api('PUT', '/api/v1/tools/victim/deployment', { replicas: 1 })).status).toBe(200);
  const running = await waitFor(async () => {
    const d = (await cluster.api('GET', '/api/v1/tools/victim/deployment')).body;
    return d.instances.find((i: { state: string; containerId: string | null }) => i.state === 'running' && i.containerId);
  }, 'victim running');
  victimContainer = running.containerId;
  // Let the agent's first reports and the hub's sends settle before the baselines are taken.
  await waitFor(async () => cluster.agent!.connection.revision === (await currentRevision(cluster.server!.deps.db)), 'agent caught up');
}, 120_000);
afterAll(async () => {
  await cluster?.close();
  rmSync(mountRoot, { recursive: true, force: true });
});

/** PUT a body (an object, or raw JSON text for what JSON.stringify cannot say) as the admin. */
async function put(name: string, body: object | string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${cluster.url}/api/v1/tools/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Frames the hub sent to agents, heartbeats aside (those are sent on a timer whatever happens). */
async function framesSent(): Promise<number> {
  const metric = cluster.server!.deps.metrics.registry.getSingleMetric('machete_ws_frames_sent_total');
  const values = (await metric!.get()).values;
  return values.filter((v) => v.labels.type !== 'heartbeat').reduce((n, v) => n + v.value, 0);
}

/** What must not move when a spec is refused. */
async function observe() {
  const victim = (await cluster.api('GET', '/api/v1/tools/victim')).body;
  return {
    revision: await currentRevision(cluster.server!.deps.db),
    agentRevision: cluster.agent!.connection.revision,
    framesSent: await framesSent(),
    victim: { version: victim.version, spec: victim.spec },
    containers: (await cluster.containers()).map((c) => c.Id).sort(),
  };
}

interface Row {
  what: string;
  body: object | string;
  field: string;
}

let fresh = 0;
/**
 * Each row: 400 invalid_argument naming `field`, for a new tool and for the deployed one; the new
 * one stays 404; two refusals audited, the first with the field in its reason. Then, once per
 * table, after a pause long enough for any fan-out: nothing moved.
 */
async function expectRefused(rows: Row[]): Promise<void> {
  const before = await observe();
  expect(before.containers).toContain(victimContainer);
  for (const row of rows) {
    const name = `hostile-${++fresh}`;
    const mark = await eventMark(cluster.server!.deps.events);
    for (const target of [name, 'victim']) {
      const r = await put(target, row.body);
      expect(r.status, `${row.what} → ${target}: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(400);
      expect(r.body.error.code, row.what).toBe('invalid_argument');
      expect(r.body.error.details?.field, row.what).toBe(row.field);
      expect(r.body.error.message.startsWith(`${row.field}:`), row.what).toBe(true);
    }
    expect((await cluster.api('GET', `/api/v1/tools/${name}`)).status, row.what).toBe(404);
    const refused = await eventsSince(cluster.server!.deps.events, mark, (e) => e.outcome === 'refused' && e.action === PUT_TOOL && e.data?.status === 400);
    expect(refused.reduce((n, e) => n + Number(e.data?.coalesced ?? 1), 0), row.what).toBe(2);
    expect(refused[0]?.reason?.startsWith(`${row.field}:`), `${row.what}: ${refused[0]?.reason}`).toBe(true);
  }
  await new Promise((r) => setTimeout(r, 500));
  expect(await observe()).toEqual(before);
}

const withMount = (mount: Record<string, unknown>, extra: object = {}) => ({ ...base(), mounts: [{ target: '/data', ...mount }], ...extra });
const sources = (list: string[], field = 'mounts.0.source'): Row[] => list.map((source) => ({ what: `source ${JSON.stringify(source)}`, body: withMount({ source }), field }));

describe('mount sources', () => {
  it('refuses ".." traversal out of the allowlist (case 1)', async () => {
    await expectRefused(sources([`${A}/../../etc`, `${A}/..`, `${A}/sub/../../../etc`, `${A}/./../ro`, `${A}/sub/..`]));
  });

  it('refuses relative and empty sources (case 2)', async () => {
    await expectRefused(sources(['data', './x', '', '../etc', 'srv/allow']));
  });

  it('refuses engine and runtime sockets and state even inside the allowlist (case 4)', async () => {
    await expectRefused(
      sources([
        '/var/run/docker.sock', '/run/docker.sock', '/run', '/var/run', '/run/containerd/containerd.sock', '/var/lib/docker', '/var/lib/containerd',
        `${A}/docker.sock`, `${A}/x.sock`, `${A}/sub/buildkitd.SOCK`, `${A}/containerd`, `${A}/.docker`, `${A}/docker`, inject('dockerSocket'),
      ]),
    );
  });

  it('refuses the host\'s system paths (case 5)', async () => {
    await expectRefused(sources(['/', '/proc', '/sys', '/dev', '/etc', '/boot', '/lib', '/usr', '/root', '/proc/1/root', '/etc/shadow', '/usr/bin', '//etc', '/./proc/']));
  });

  it('refuses ":" and "," inside a path, where a bind string would split (case 9)', async () => {
    await expectRefused([
      ...sources([`${A}/x:/etc:rw`, `${A}/a,b`, `${A}:rw`]),
      { what: 'target with ":"', body: withMount({ source: A, target: '/data:/etc' }), field: 'mounts.0.target' },
      { what: 'target with ","', body: withMount({ source: A, target: '/a,b' }), field: 'mounts.0.target' },
    ]);
  });

  it('refuses write on an ro entry and sources outside the fleet-wide allowlist (case 10)', async () => {
    await expectRefused([
      { what: 'write on ro', body: withMount({ source: R, readOnly: false }), field: 'mounts.0.readOnly' },
      { what: 'write under ro', body: withMount({ source: path.join(R, 'x'), readOnly: false }), field: 'mounts.0.readOnly' },
      { what: 'second mount writes on ro', body: { ...base(), mounts: [{ source: A, target: '/a' }, { source: R, target: '/b', readOnly: false }] }, field: 'mounts.1.readOnly' },
      ...sources(['/srv/other', `${A}-other`, mountRoot, `${mountRoot}/allowed`]),
    ]);
  });

  it('mounts a read-only request on an rw entry read-only on the engine (case 10 INS)', async () => {
    const info = await cluster.docker.getContainer(victimContainer).inspect();
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Mounts).toEqual([expect.objectContaining({ Type: 'bind', Source: A, Destination: '/data', RW: false })]);
    expect(info.HostConfig.Mounts).toEqual([expect.objectContaining({ Type: 'bind', Source: A, Target: '/data', ReadOnly: true })]);
  });
});

describe('mount targets', () => {
  it('refuses protected targets and ".." in a target (case 6)', async () => {
    const targets = ['/', '/proc', '/sys', '/dev', '/run/secrets', '/run/secrets/x', '/run', '/proc/sys/kernel', '/dev/shm', '/d/../etc', '/..'];
    await expectRefused(targets.map((target) => ({ what: `target ${target}`, body: withMount({ source: A, target }), field: 'mounts.0.target' })));
  });

  it('refuses nested and duplicate targets, naming the later mount (case 7)', async () => {
    const pair = (t1: string, t2: string, s2 = A): Row => ({
      what: `targets ${t1} ${t2}`,
      body: { ...base(), mounts: [{ source: A, target: t1 }, { source: s2, target: t2 }] },
      field: 'mounts.1.target',
    });
    await expectRefused([pair('/data', '/data/sub'), pair('/data/sub', '/data'), pair('/data', '/data/'), pair('/data', '/data', R), pair('/a', '//a/./b')]);
  });
});

describe('NUL bytes (case 8)', () => {
  it('answers 400, never 500, to a JSON-escaped NUL in a source, a target or the working directory', async () => {
    const raw = (spec: string) => `{"image":${JSON.stringify(image())},${spec}}`;
    await expectRefused([
      { what: 'NUL in source', body: raw(`"mounts":[{"source":"${A}/a\\u0000b","target":"/data"}]`), field: 'mounts.0.source' },
      { what: 'NUL ending source', body: raw(`"mounts":[{"source":"${A}\\u0000","target":"/data"}]`), field: 'mounts.0.source' },
      { what: 'NUL in target', body: raw(`"mounts":[{"source":"${A}","target":"/da\\u0000ta"}]`), field: 'mounts.0.target' },
      { what: 'NUL in workingDir', body: raw('"workingDir":"/work\\u0000/x"'), field: 'workingDir' },
      { what: 'only NUL', body: raw('"workingDir":"\\u0000"'), field: 'workingDir' },
    ]);
  });
});

describe('volumes and other containers (case 11)', () => {
  it('cannot express a bind through volume driver options, or another container\'s volumes', async () => {
    const driverOpts = { type: 'none', o: 'bind', device: '/' };
    await expectRefused([
      { what: 'volume with bind opts', body: withMount({ type: 'volume', source: A, driverOpts }), field: 'mounts.0.type' },
      { what: 'named volume with bind opts', body: withMount({ type: 'volume', source: 'v', driverOpts }), field: 'mounts.0.source' },
      { what: 'driverOpts on a bind', body: withMount({ source: A, driverOpts }), field: 'mounts.0.driverOpts' },
      { what: 'DriverOpts', body: withMount({ source: A, DriverOpts: driverOpts }), field: 'mounts.0.DriverOpts' },
      { what: 'volumeOptions', body: withMount({ source: A, volumeOptions: { driverConfig: { options: driverOpts } } }), field: 'mounts.0.volumeOptions' },
      ...['VolumesFrom', 'volumesFrom', 'volumes_from', 'VOLUMESFROM'].map((k) => ({ what: k, body: { ...base(), [k]: ['victim'] }, field: k })),
      { what: 'volumes', body: { ...base(), volumes: { '/data': {} } }, field: 'volumes' },
      { what: 'binds', body: { ...base(), Binds: ['/:/host'] }, field: 'Binds' },
    ]);
  });
});

describe('working directory (case 12)', () => {
  it('refuses a working directory under /proc, /sys or /dev', async () => {
    const dirs = ['/proc', '/proc/self', '/proc/1/root', '/proc/self/cwd', '/sys/kernel', '/dev', '/dev/shm', '//proc', '/./proc/x', '/proc/', '/work/../proc'];
    await expectRefused(dirs.map((workingDir) => ({ what: `workingDir ${workingDir}`, body: { ...base(), workingDir }, field: 'workingDir' })));
  });
});

describe('privileges (case 13)', () => {
  const FORBIDDEN: Record<string, unknown> = {
    privileged: true,
    capAdd: ['SYS_ADMIN'],
    devices: ['/dev/sda'],
    hostNetwork: true,
    pid: 'host',
    ipc: 'host',
    uts: 'host',
    userns: 'host',
    securityOpt: ['seccomp=unconfined'],
    sysctls: { 'kernel.shm_rmid_forced': '1' },
    runtime: 'runc',
    cgroupParent: '/',
  };
  const casings = (k: string) => [...new Set([k, k[0]!.toUpperCase() + k.slice(1), k.toUpperCase(), k.toLowerCase()])];
  const nestings: Array<[string, (k: string, v: unknown) => object]> = [
    ['', (k, v) => ({ ...base(), [k]: v })],
    ['resources.', (k, v) => ({ ...base(), resources: { cpus: 0.5, [k]: v } })],
    ['mounts.0.', (k, v) => withMount({ source: A, [k]: v })],
    ['placement.', (k, v) => ({ ...base(), placement: { labels: {}, [k]: v } })],
  ];
  const rows: Row[] = Object.entries(FORBIDDEN).flatMap(([key, value]) =>
    casings(key).flatMap((k) => nestings.map(([prefix, make]): Row => ({ what: `${prefix}${k}`, body: make(k, value), field: `${prefix}${k}` }))),
  );

  it(`refuses all 12 names in several casings and nestings as unknown fields (${rows.length} bodies)`, async () => {
    expect(new Set(rows.map((r) => r.field.split('.').at(-1)!.toLowerCase())).size).toBe(12);
    await expectRefused(rows);
  }, 120_000);
});

describe('network (case 15)', () => {
  it('refuses the host network, another container\'s namespace and any other mode', async () => {
    const modes = ['host', 'container:abc', 'Host', 'HOST', 'bridge', 'default', 'container:victim', ''];
    await expectRefused(modes.map((network) => ({ what: `network ${network}`, body: { ...base(), network }, field: 'network' })));
  });
});

describe('resources (cases 20 and 27)', () => {
  it('refuses zero, negative, huge, fractional and string limits', async () => {
    const bad: Array<[string, unknown]> = [
      ['memoryMb', 0], ['memoryMb', -1], ['memoryMb', -256], ['memoryMb', '1e99'], ['memoryMb', 1e99], ['memoryMb', 256.5], ['memoryMb', '256'],
      ['pids', -1], ['pids', 0], ['pids', 1.5], ['pids', 1e9],
      ['cpus', 1000], ['cpus', 0], ['cpus', -1], ['cpus', '1'],
    ];
    await expectRefused(bad.map(([k, v]) => ({ what: `${k} ${JSON.stringify(v)}`, body: { ...base(), resources: { [k]: v } }, field: `resources.${k}` })));
  });
});

describe('the observations themselves', () => {
  it('move when a valid spec IS accepted: new version, new revision, frames sent, agent caught up', async () => {
    const before = await observe();
    const r = await put('victim', { ...base(), command: ['sleep', '3601'], mounts: [{ source: `${A}/sub`, target: '/data', readOnly: false }], workingDir: '/data' });
    expect(r.status).toBe(200);
    expect(r.body.version).toBe(before.victim.version + 1);
    expect(await currentRevision(cluster.server!.deps.db)).toBeGreaterThan(before.revision);
    await waitFor(async () => (await framesSent()) > before.framesSent, 'a frame sent to the agent');
    await waitFor(async () => cluster.agent!.connection.revision > before.agentRevision, 'the agent applied the new revision');
    // And a valid write request on the rw entry is mounted writable.
    const running = await waitFor(async () => {
      const d = (await cluster.api('GET', '/api/v1/tools/victim/deployment')).body;
      return d.instances.find((i: { state: string; version: number; containerId: string | null }) => i.state === 'running' && i.version === r.body.version && i.containerId);
    }, 'new version running', 30_000);
    const info = await cluster.docker.getContainer(running.containerId).inspect();
    expect(info.Mounts).toEqual([expect.objectContaining({ Source: `${A}/sub`, Destination: '/data', RW: true })]);
    expect(info.Config.WorkingDir).toBe('/data');
  }, 60_000);
});

describe("the agent's own state directory (case 4, AGT through the whole stack)", () => {
  it('is refused by the running agent even when both allowlists include it, and reported failed', async () => {
    const stateDir = path.join(cluster.dir, 'agent');
    expect((await put('steal-cred', { ...base(), mounts: [{ source: stateDir, target: '/data' }] })).status).toBe(201);
    expect((await cluster.api('PUT', '/api/v1/tools/steal-cred/deployment', { replicas: 1 })).status).toBe(200);
    const inst = await waitFor(async () => {
      const d = (await cluster.api('GET', '/api/v1/tools/steal-cred/deployment')).body;
      return d.instances.find((i: { state: string; reason: string | null }) => i.state === 'failed' && i.reason);
    }, 'refusal reported');
    expect(inst.reason).toContain("mount source exposes the agent's credentials");
    expect(inst.reason).not.toContain(stateDir);
    expect((await cluster.containers()).some((c) => c.Labels['machete.tool'] === 'steal-cred')).toBe(false);
  }, 60_000);
});

describe('MACHETE_ALLOWED_MOUNTS on the control plane', () => {
  it('is parsed by loadConfig: unset or empty means no fleet-wide list; a bad entry stops the start, named', () => {
    expect(loadConfig({}).allowedMounts).toBeNull();
    expect(loadConfig({ MACHETE_ALLOWED_MOUNTS: ' ' }).allowedMounts).toBeNull();
    expect(loadConfig({ MACHETE_ALLOWED_MOUNTS: '/srv/a/:ro,/srv/b:rw' }).allowedMounts).toEqual([{ path: '/srv/a', writable: false }, { path: '/srv/b', writable: true }]);
    expect(() => loadConfig({ MACHETE_ALLOWED_MOUNTS: '/srv/a' })).toThrow(/MACHETE_ALLOWED_MOUNTS.*"\/srv\/a"/);
    expect(() => loadConfig({ MACHETE_ALLOWED_MOUNTS: '/:rw' })).toThrow(/whole filesystem/);
  });

  it('when unset, leaves the allowlist to each host but still refuses sensitive paths and protected targets', async () => {
    const api = await makeApi();
    try {
      expect((await api.call('PUT', '/api/v1/tools/anywhere', { ...base(), mounts: [{ source: '/srv/anything', target: '/data', readOnly: false }] })).status).toBe(201);
      for (const [body, field] of [
        [{ ...base(), mounts: [{ source: '/etc', target: '/data' }] }, 'mounts.0.source'],
        [{ ...base(), mounts: [{ source: '/srv/x/../../etc', target: '/data' }] }, 'mounts.0.source'],
        [{ ...base(), mounts: [{ source: '/srv/x', target: '/run/secrets' }] }, 'mounts.0.target'],
        [{ ...base(), workingDir: '/proc/self' }, 'workingDir'],
      ] as const) {
        const r = await api.call('PUT', '/api/v1/tools/refused', body);
        expect(r.status).toBe(400);
        expect(r.body.error.details.field).toBe(field);
      }
      expect((await api.call('GET', '/api/v1/tools/refused')).status).toBe(404);
    } finally {
      await api.close();
    }
  }, 60_000);
});
