import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { machete, tempHome } from '../helpers/cli.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// The live audit end to end: POST /api/v1/audit and `machete audit` → control plane → WebSocket →
// agent → the real dockerd, which holds a container made by hand (never started) beside a replica.
let cluster: TestCluster;
let home: string;
let admin: string;
let riskyId = '';
let managedId = '';
const riskyName = `audit-e2e-${randomUUID().slice(0, 8)}-risky`;
const cli = (argv: string[], token = admin) => machete(argv, { HOME: home, MACHETE_SERVER: cluster.url, MACHETE_TOKEN: token });

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
  admin = await cluster.token('admin');
  home = tempHome();
  expect((await cluster.api('PUT', '/api/v1/tools/audited', { image: inject('testImage'), command: ['sleep', '3600'] })).status).toBe(201);
  expect((await cluster.api('PUT', '/api/v1/tools/audited/deployment', { replicas: 1 })).status).toBe(200);
  managedId = await waitFor(async () => {
    const list = (await cluster.api('GET', '/api/v1/instances?tool=audited')).body;
    return list.find((i: any) => i.state === 'running' && i.containerId)?.containerId as string | undefined;
  }, 'replica running');
  // Everything the rules look for, made the way someone would by hand: created only, never started.
  const risky = await cluster.docker.createContainer({
    name: riskyName,
    Image: inject('testImage'),
    Cmd: ['true'],
    HostConfig: { Privileged: true, Binds: ['/var/run/docker.sock:/var/run/docker.sock'], PidMode: 'host', NetworkMode: 'none' },
  });
  riskyId = risky.id;
});

afterAll(async () => {
  if (riskyId) await cluster.docker.getContainer(riskyId).remove({ force: true }).catch(() => {});
  await cluster?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

/** The agent's host in a report, and the two containers this file made. */
function mine(body: any) {
  const host = body.hosts.find((h: any) => h.hostId === cluster.agent!.hostId);
  const byId = (id: string) => host?.containers.find((c: any) => c.container.id === id);
  return { host, risky: byId(riskyId), managed: byId(managedId) };
}

describe('machete audit against a running MACHETE', () => {
  it('reports the unmanaged risky container rule by rule and MACHETE’s replica clean, and audits the call', async () => {
    const r = await cluster.api('POST', '/api/v1/audit', undefined, admin);
    expect(r.status).toBe(200);
    const { host, risky, managed } = mine(r.body);
    expect(host).toMatchObject({ name: 'e2e-host', status: 'ok' });
    expect(host.error).toBeUndefined();
    expect(risky.container).toMatchObject({ name: riskyName, managed: false, running: false, privileged: true, pidMode: 'host', networkMode: 'none' });
    expect(risky.findings.map((f: any) => f.rule).sort()).toEqual(['cpu-limit', 'docker-socket', 'host-namespace', 'memory-limit', 'no-new-privileges', 'privileged']);
    expect(risky.findings.find((f: any) => f.rule === 'docker-socket').message).toContain('/var/run/docker.sock');
    expect(risky.findings.find((f: any) => f.rule === 'host-namespace').message).toContain('pid');
    expect(managed.container).toMatchObject({ managed: true, running: true });
    expect(managed.findings).toEqual([]);
    expect(r.body.findings).toBeGreaterThanOrEqual(risky.findings.length);
    // Nothing was changed: the risky container is still there, still not started.
    expect((await cluster.docker.getContainer(riskyId).inspect()).State.Status).toBe('created');
    const doc = (await cluster.api('GET', '/api/openapi.json', undefined, admin)).body;
    expect(doc.paths['/api/v1/audit'].post.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/AuditResult' });
    const events = (await cluster.api('GET', '/api/v1/events?limit=50')).body;
    expect(events.filter((e: any) => e.action === 'audit.run')).toEqual([
      expect.objectContaining({ kind: 'audit', outcome: 'ok', actor: expect.stringMatching(/^token:/), data: expect.objectContaining({ hosts: 1, unanswered: [] }) }),
    ]);
  });

  it('through the CLI: exit 1 with a table of findings, and the same report with --json', async () => {
    const human = await cli(['audit']);
    expect(human.code, human.stderr).toBe(1);
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SEVERITY\s+RULE\s+HOST\s+CONTAINER\s+FINDING$/);
    const riskyRows = lines.filter((l) => l.includes(riskyName));
    expect(riskyRows.map((l) => l.split(/\s{3,}/)[1]).sort()).toEqual(['cpu-limit', 'docker-socket', 'host-namespace', 'memory-limit', 'no-new-privileges', 'privileged']);
    expect(riskyRows[0]).toMatch(/^high/);
    expect(human.stdout).not.toContain('[managed]');
    expect(human.stderr).toMatch(/\d+ findings in \d+ of \d+ containers on 1 host\n$/);

    const json = await cli(['audit', '--json']);
    expect(json.code, json.stderr).toBe(1);
    const { host, risky, managed } = mine(JSON.parse(json.stdout));
    expect(host.status).toBe('ok');
    expect(risky.findings).toHaveLength(6);
    expect(managed.findings).toEqual([]);
  });

  it('is admin only: a viewer or an operator gets 403, on the route and in the CLI (exit 1)', async () => {
    const viewer = await cluster.token('viewer');
    const r = await cluster.api('POST', '/api/v1/audit', undefined, viewer);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('forbidden');
    expect((await cluster.api('POST', '/api/v1/audit', undefined, await cluster.token('operator'))).status).toBe(403);
    const c = await cli(['audit', '--json'], viewer);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/admin role \(403 forbidden\)/);
    expect(c.stdout).toBe('');
  });

  it('lists a connected agent that never reports as timeout, and ignores its report for an id it was not sent', async () => {
    const { hostId, token } = await enrollFake(cluster, 'silent');
    const fake = await FakeAgent.connect(cluster, token);
    fake.hello();
    await fake.next('snapshot');
    const pending = cluster.api('POST', '/api/v1/audit', undefined, admin);
    const asked = await fake.next('auditRequest');
    expect(asked.id).toMatch(/^a[0-9a-f]{24}$/);
    // A report for an id of its own making: not what it was asked, so not taken as its answer.
    fake.send({ type: 'auditReport', id: `a${'0'.repeat(24)}`, containers: [] });
    const r = await pending;
    expect(r.status).toBe(200);
    const silent = r.body.hosts.find((h: any) => h.hostId === hostId);
    // Named 'fake': the fake agent's hello renames its host.
    expect(silent).toMatchObject({ name: 'fake', status: 'timeout', error: 'no report within 10s', containers: [] });
    expect(mine(r.body).host.status).toBe('ok');
    fake.ws.close();
  }, 30_000);
});
