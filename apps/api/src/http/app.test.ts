import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi } from '../../../../test/helpers/api.ts';

let api: Awaited<ReturnType<typeof makeApi>>;
beforeAll(async () => {
  api = await makeApi();
}, 60_000);
afterAll(() => api?.close());

const spec = { image: 'machete/busybox:test', command: ['sleep', '3600'] };

describe('health and docs', () => {
  it('answers health without a token', async () => {
    const r = await api.call('GET', '/api/health', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('healthy');
  });
  it('serves an OpenAPI 3.1 document listing the v1 routes', async () => {
    const r = await api.call('GET', '/api/openapi.json', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths)).toEqual(expect.arrayContaining(['/api/v1/tools/{name}', '/api/v1/tools/{name}/deployment', '/api/v1/hosts', '/api/v1/tokens', '/api/v1/instances', '/api/v1/events']));
    expect(r.body.components.securitySchemes.bearer.scheme).toBe('bearer');
  });
  it('renders the docs page', async () => {
    const r = await api.call('GET', '/api/docs', undefined, null);
    expect(r.status).toBe(200);
    expect(String(r.body)).toContain('swagger');
  });
});

describe('auth', () => {
  it('refuses requests without a token with 401 in the error shape', async () => {
    const r = await api.call('GET', '/api/v1/tools', undefined, null);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('unauthenticated');
  });
  it('refuses a garbage token', async () => {
    expect((await api.call('GET', '/api/v1/tools', undefined, 'abc.def.ghi')).status).toBe(401);
  });
  it('refuses a viewer on a mutating route with 403 and audits it', async () => {
    const viewer = await api.token('viewer');
    const r = await api.call('PUT', '/api/v1/tools/denied', spec, viewer);
    expect(r.status).toBe(403);
    expect((await api.call('GET', '/api/v1/tools/denied')).status).toBe(404);
    const ev = await api.call('GET', '/api/v1/events');
    expect(ev.body.some((e: any) => e.outcome === 'refused' && e.reason.includes('operator'))).toBe(true);
  });
  it('refuses an invoker on tools', async () => {
    const invoker = await api.token('invoker');
    expect((await api.call('GET', '/api/v1/tools', undefined, invoker)).status).toBe(403);
  });
  it('issues tokens and revokes them from the next request on', async () => {
    const r = await api.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci' });
    expect(r.status).toBe(201);
    expect((await api.call('GET', '/api/v1/tools', undefined, r.body.token)).status).toBe(200);
    expect((await api.call('DELETE', `/api/v1/tokens/${r.body.id}`)).status).toBe(204);
    expect((await api.call('GET', '/api/v1/tools', undefined, r.body.token)).status).toBe(401);
  });
  it('does not accept a join token as an access token', async () => {
    const j = await api.call('POST', '/api/v1/hosts/join-tokens', {});
    expect(j.status).toBe(201);
    expect((await api.call('GET', '/api/v1/tools', undefined, j.body.token)).status).toBe(401);
  });
  it('does not let an operator mint tokens', async () => {
    const op = await api.token('operator');
    expect((await api.call('POST', '/api/v1/tokens', { role: 'admin' }, op)).status).toBe(403);
  });
});

describe('tools', () => {
  it('creates a tool at version 1 with defaults filled in', async () => {
    const r = await api.call('PUT', '/api/v1/tools/hello', spec);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'hello', version: 1 });
    expect(r.body.spec).toMatchObject({ network: 'none', user: '65534:65534', resources: { cpus: 0.5, memoryMb: 256, pids: 128 } });
  });
  it('treats the same spec as a no-op and a changed spec as a new version', async () => {
    const same = await api.call('PUT', '/api/v1/tools/hello', spec);
    expect(same.status).toBe(200);
    expect(same.body.version).toBe(1);
    const changed = await api.call('PUT', '/api/v1/tools/hello', { ...spec, env: { A: '1' } });
    expect(changed.status).toBe(200);
    expect(changed.body.version).toBe(2);
  });
  it('refuses unknown fields with 400 naming them, and stores nothing', async () => {
    const r = await api.call('PUT', '/api/v1/tools/evil', { ...spec, privileged: true });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_argument');
    expect(r.body.error.message).toContain('privileged');
    expect(r.body.error.details.field).toBe('privileged');
    expect((await api.call('GET', '/api/v1/tools/evil')).status).toBe(404);
  });
  it.each([
    ['memory as a string', { resources: { memoryMb: '1e99' } }, 'resources.memoryMb'],
    ['negative pids', { resources: { pids: -1 } }, 'resources.pids'],
    ['host network', { network: 'host' }, 'network'],
    ['root user', { user: '0:0' }, 'user'],
  ])('refuses %s naming the field', async (_n, extra, field) => {
    const r = await api.call('PUT', '/api/v1/tools/bad', { ...spec, ...extra });
    expect(r.status).toBe(400);
    expect(r.body.error.details.field).toBe(field);
  });
  it('refuses bad tool names', async () => {
    expect((await api.call('PUT', `/api/v1/tools/${encodeURIComponent("x'); DROP TABLE tools;--")}`, spec)).status).toBe(400);
    expect((await api.call('PUT', `/api/v1/tools/${'a'.repeat(100)}`, spec)).status).toBe(400);
  });
  it('refuses malformed JSON with 400', async () => {
    const r = await api.call('PUT', '/api/v1/tools/broken', '{"image":');
    expect(r.status).toBe(400);
  });
  it('refuses a body over the limit with 413', async () => {
    const r = await api.call('PUT', '/api/v1/tools/big', { image: 'x', env: { A: 'a'.repeat(2 * 1024 * 1024) } });
    expect(r.status).toBe(413);
  });
  it('lists and deletes tools', async () => {
    await api.call('PUT', '/api/v1/tools/gone', spec);
    expect((await api.call('GET', '/api/v1/tools')).body.map((t: any) => t.name)).toContain('gone');
    expect((await api.call('DELETE', '/api/v1/tools/gone')).status).toBe(204);
    expect((await api.call('GET', '/api/v1/tools/gone')).status).toBe(404);
    expect((await api.call('DELETE', '/api/v1/tools/gone')).status).toBe(404);
  });
});

describe('deployments', () => {
  it('keeps replicas pending with a reason while no host is ready', async () => {
    await api.call('PUT', '/api/v1/tools/pend', spec);
    const r = await api.call('PUT', '/api/v1/tools/pend/deployment', { replicas: 2 });
    expect(r.status).toBe(200);
    expect(r.body.replicas).toBe(2);
    expect(r.body.instances).toHaveLength(2);
    expect(r.body.instances.every((i: any) => i.state === 'pending' && i.hostId === null && i.reason)).toBe(true);
    const down = await api.call('PUT', '/api/v1/tools/pend/deployment', { replicas: 0 });
    expect(down.body.instances).toHaveLength(0);
  });
  it('refuses a deployment of an unknown tool or version', async () => {
    expect((await api.call('PUT', '/api/v1/tools/nope/deployment', { replicas: 1 })).status).toBe(404);
    await api.call('PUT', '/api/v1/tools/ver', spec);
    const r = await api.call('PUT', '/api/v1/tools/ver/deployment', { replicas: 1, version: 9 });
    expect(r.status).toBe(400);
    expect(r.body.error.details.field).toBe('version');
  });
  it('refuses negative replicas', async () => {
    await api.call('PUT', '/api/v1/tools/neg', spec);
    expect((await api.call('PUT', '/api/v1/tools/neg/deployment', { replicas: -1 })).status).toBe(400);
  });
});

describe('hosts', () => {
  it('enrolls a host with a join token and lists it', async () => {
    const j = await api.call('POST', '/api/v1/hosts/join-tokens', { labels: { zone: 'a' } });
    const e = await api.call('POST', '/api/v1/agent/enroll', { hostName: 'node-1' }, j.body.token);
    expect(e.status).toBe(201);
    const h = await api.call('GET', `/api/v1/hosts/${e.body.hostId}`);
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ name: 'node-1', labels: { zone: 'a' }, status: 'down', schedulable: true });
    const p = await api.call('PATCH', `/api/v1/hosts/${e.body.hostId}`, { labels: { zone: 'b' }, schedulable: false });
    expect(p.body).toMatchObject({ labels: { zone: 'b' }, schedulable: false });
  });
  it('refuses enrollment with a user token', async () => {
    expect((await api.call('POST', '/api/v1/agent/enroll', { hostName: 'x' })).status).toBe(401);
  });
});

describe('concurrency', () => {
  it('creates a tool once when the same name is put concurrently', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => api.call('PUT', '/api/v1/tools/racer', spec)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect((await api.call('GET', '/api/v1/tools/racer')).body.version).toBe(1);
  });
});
