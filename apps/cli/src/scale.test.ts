import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../../../test/helpers/cluster.ts';
import { machete, tempHome } from '../../../test/helpers/cli.ts';

// The CLI against a control plane with a real agent on the run's dockerd: scale, instances, hosts.
let cluster: TestCluster;
let home = '';
let hostId = '';
const run = (argv: string[], opts: Parameters<typeof machete>[2] = {}) => machete(argv, { HOME: home }, opts);
const apply = async (name: string, yaml: string) => {
  const f = path.join(home, `${name}.yaml`);
  writeFileSync(f, yaml);
  const r = await run(['tool', 'apply', name, '-f', f]);
  expect(r.code, r.stderr).toBe(0);
};
const runningContainers = async (tool: string) =>
  (await cluster.containers(false)).filter((c) => c.State === 'running' && c.Labels['machete.tool'] === tool).length;

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  const server = await cluster.startServer();
  await cluster.startAgent();
  hostId = cluster.agent!.hostId;
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body?.status === 'ready', 'host ready');
  home = tempHome();
  const admin = (await server.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 3600 })).token;
  expect((await machete(['login', '--server', cluster.url], { HOME: home }, { stdin: admin })).code).toBe(0);
});
afterAll(async () => {
  await cluster?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('hosts', () => {
  it('hosts ls shows the agent host as ready in a table, and as JSON', async () => {
    const r = await run(['hosts', 'ls']);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+STATUS\s+SCHEDULABLE\s+INSTANCES\s+CPUS\s+MEMORY MB\s+LAST SEEN\s+LABELS$/);
    expect(rows.find((l) => l.startsWith(hostId))).toMatch(new RegExp(`^${hostId}\\s+e2e-host\\s+ready\\s+yes\\s+0\\s`));
    const hosts = JSON.parse((await run(['hosts', 'ls', '--json'])).stdout);
    expect(hosts).toEqual([expect.objectContaining({ id: hostId, name: 'e2e-host', status: 'ready' })]);
  });

  it('hosts label sets and removes labels, keeping the others', async () => {
    expect((await run(['hosts', 'label', hostId, 'zone=a', 'disk=ssd'])).stdout).toBe(`host/${hostId} labels: disk=ssd,zone=a\n`);
    expect((await run(['hosts', 'label', hostId, 'zone-'])).stdout).toBe(`host/${hostId} labels: disk=ssd\n`);
    const h = (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body;
    expect(h.labels).toEqual({ disk: 'ssd' });
    const bad = await run(['hosts', 'label', hostId, 'machete.x=1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^machete: labels.*reserved/);
  });

  it('hosts drain marks the host draining and unschedulable; uncordon makes it ready again', async () => {
    const drained = await run(['hosts', 'drain', hostId]);
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toBe(`host/${hostId} (e2e-host) draining, 0 instances left on it\n`);
    expect((await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body).toMatchObject({ status: 'draining', schedulable: false });
    const back = await run(['hosts', 'uncordon', hostId, '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ id: hostId, status: 'ready', schedulable: true });
    expect((await run(['hosts', 'cordon', hostId])).stdout).toBe(`host/${hostId} (e2e-host) ready, not schedulable\n`);
    expect((await run(['hosts', 'uncordon', hostId])).stdout).toBe(`host/${hostId} (e2e-host) ready, schedulable\n`);
  });

  it('an unknown host is a one-line not-found error', async () => {
    expect(await run(['hosts', 'drain', 'hnope'])).toMatchObject({ code: 1, stderr: 'machete: host not found (404 not_found)\n' });
  });
});

describe('scale', () => {
  it('waits until N replicas run on the engine and exits 0; instances lists them; scale 0 removes them', async () => {
    await apply('cli-sleeper', `image: ${inject('testImage')}\ncommand: [sleep, "3600"]\nresources: {cpus: 0.1, memoryMb: 32}\n`);
    const up = await run(['scale', 'cli-sleeper', '2', '--timeout', '60']);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout.trimEnd().split('\n').at(-1)).toBe('cli-sleeper: 2/2 running');
    expect(await runningContainers('cli-sleeper')).toBe(2);

    const table = (await run(['instances', '--tool', 'cli-sleeper'])).stdout.trimEnd().split('\n');
    expect(table[0]).toMatch(/^ID\s+TOOL\s+VERSION\s+HOST\s+DESIRED\s+STATE\s+RESTARTS/);
    expect(table.slice(1).filter((l) => new RegExp(`cli-sleeper\\s+1\\s+${hostId}\\s+running\\s+running\\s+0`).test(l))).toHaveLength(2);
    const json = JSON.parse((await run(['instances', '--host', hostId, '--json'])).stdout);
    expect(json.filter((i: any) => i.tool === 'cli-sleeper')).toHaveLength(2);

    const down = await run(['scale', 'cli-sleeper', '0']);
    expect(down.code, down.stderr).toBe(0);
    await waitFor(async () => (await runningContainers('cli-sleeper')) === 0, 'replicas removed');
  });

  it('draws a live progress line on a terminal', async () => {
    const r = await run(['scale', 'cli-sleeper', '1', '--timeout', '60'], { tty: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('\r\x1b[2K');
    expect(r.stdout.endsWith('\r\x1b[2Kcli-sleeper: 1/1 running\n')).toBe(true);
    const json = await run(['scale', 'cli-sleeper', '0', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ tool: 'cli-sleeper', replicas: 0, running: 0, instances: [] });
    expect((await run(['tool', 'rm', 'cli-sleeper'])).code).toBe(0);
  });

  it('fails with exit 1 and the reason when the image is missing', async () => {
    await apply('cli-missing', 'image: machete/missing:1\ncommand: [sleep, "3600"]\n');
    const t0 = Date.now();
    const r = await run(['scale', 'cli-missing', '1', '--timeout', '60', '--fail-after', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: scale cli-missing: 1 of 1 replicas failing: \S+ on h\S+: image not found: machete\/missing:1\n$/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect((await run(['tool', 'rm', 'cli-missing'])).code).toBe(0);
  });

  it('fails with exit 1 when a replica crash-loops, with its exit code', async () => {
    await apply('cli-crash', `image: ${inject('testImage')}\ncommand: [sh, -c, "exit 3"]\n`);
    const r = await run(['scale', 'cli-crash', '1', '--timeout', '60', '--fail-after', '3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: scale cli-crash: 1 of 1 replicas failing: \S+ on h\S+: .*\(exit code 3, \d+ restarts\)\n$/);
    expect(r.stdout).toMatch(/^cli-crash: 0\/1 running/);
    expect((await run(['tool', 'rm', 'cli-crash'])).code).toBe(0);
  });

  it('fails with exit 1 on timeout, naming what is not running', async () => {
    await apply('cli-nowhere', `image: ${inject('testImage')}\ncommand: [sleep, "3600"]\nplacement: {labels: {zone: mars}}\n`);
    const r = await run(['scale', 'cli-nowhere', '1', '--timeout', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machete: scale cli-nowhere: timed out after 2s with 0\/1 running: \S+: /);
    expect((await run(['tool', 'rm', 'cli-nowhere'])).code).toBe(0);
  });

  it('--no-wait returns at once; a tool that does not exist is a one-line error', async () => {
    await apply('cli-nowait', `image: ${inject('testImage')}\ncommand: [sleep, "3600"]\nresources: {cpus: 0.1, memoryMb: 32}\n`);
    expect(await run(['scale', 'cli-nowait', '1', '--no-wait'])).toMatchObject({ code: 0, stdout: 'cli-nowait: scaled to 1 (0 running now)\n' });
    await waitFor(async () => (await runningContainers('cli-nowait')) === 1, 'the replica running');
    expect((await run(['tool', 'rm', 'cli-nowait'])).code).toBe(0);
    expect(await run(['scale', 'cli-ghost', '1'])).toMatchObject({ code: 1, stderr: 'machete: tool not found (404 not_found)\n' });
  });
});

describe('hosts drain', () => {
  it('marks the host draining', async () => {
    const r = await run(['hosts', 'drain', hostId]);
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^host/${hostId} \\(e2e-host\\) draining`)) });
    expect(JSON.parse((await run(['hosts', 'ls', '--json'])).stdout)[0]).toMatchObject({ status: 'draining', schedulable: false });
  });
});
