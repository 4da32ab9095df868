import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../../../db/src/index.ts';
import { makeApi } from '../../../../test/helpers/api.ts';
import { loadConfig } from '../config.ts';
import { createApp } from './app.ts';

let api: Awaited<ReturnType<typeof makeApi>>;
beforeAll(async () => {
  api = await makeApi();
}, 60_000);
afterAll(() => api?.close());

const scrape = async (app = api.app, headers: Record<string, string> = {}) => {
  const res = await app.request('/metrics', { headers });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};
/** The value of one sample line, e.g. `machete_invocations_total{status="succeeded"}`; 0 when absent. */
const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe('/metrics', () => {
  it('serves Prometheus text with the HTTP histogram labelled by route pattern, not by path', async () => {
    const series = 'machete_http_request_duration_seconds_count{method="PUT",route="/api/v1/tools/:name",status="201"}';
    const before = sample((await scrape()).text, series);
    expect((await api.call('PUT', '/api/v1/tools/metered', { image: 'machete/busybox:test' })).status).toBe(201);
    const m = await scrape();
    expect(m.status).toBe(200);
    expect(m.type).toContain('text/plain');
    expect(sample(m.text, series)).toBe(before + 1);
    expect(m.text).not.toContain('route="/api/v1/tools/metered"');
    expect((await api.call('GET', '/api/v1/no/such/thing')).status).toBe(404);
    expect((await scrape()).text).toContain('route="unmatched",status="404"');
  });

  it('counts finished invocations by status with their duration, from the event they record', async () => {
    const before = sample((await scrape()).text, 'machete_invocations_total{status="timeout"}');
    await api.deps.events.record({ kind: 'lifecycle', actor: 'host:h1', action: 'invocation.finish', target: 'v1', outcome: 'error', data: { tool: 't', status: 'timeout', exitCode: null, durationMs: 1500 } });
    const text = (await scrape()).text;
    expect(sample(text, 'machete_invocations_total{status="timeout"}')).toBe(before + 1);
    expect(sample(text, 'machete_invocation_duration_seconds_bucket{le="1",status="timeout"}')).toBe(0);
    expect(sample(text, 'machete_invocation_duration_seconds_bucket{le="2.5",status="timeout"}')).toBe(1);
  });

  it('reports instances by state and connected agents from live sources', async () => {
    await api.call('PUT', '/api/v1/tools/metered/deployment', { replicas: 2 });
    const text = (await scrape()).text;
    // No host is connected: both replicas wait in pending.
    expect(sample(text, 'machete_instances{kind="replica",state="pending"}')).toBe(2);
    expect(sample(text, 'machete_connected_agents')).toBe(0);
  });

  it('keeps one registry per app: a second app starts from zero', async () => {
    const other = await makeApi();
    try {
      expect((await scrape(other.app)).text).not.toContain('route="/api/v1/tools/:name"');
    } finally {
      await other.close();
    }
  });

  it('asks for the scrape token or an admin token when configured', async () => {
    const scrapeToken = 'scrape-token-0123456789abcdef';
    const locked = createApp({ ...api.deps, metricsAccess: { token: scrapeToken, open: false } });
    expect((await scrape(locked)).status).toBe(401);
    expect((await scrape(locked, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
    expect((await scrape(locked, { authorization: `Bearer ${await api.token('viewer')}` })).status).toBe(403);
    expect((await scrape(locked, { authorization: `Bearer ${scrapeToken}` })).status).toBe(200);
    expect((await scrape(locked, { authorization: `Bearer ${api.admin}` })).status).toBe(200);
    const adminOnly = createApp({ ...api.deps, metricsAccess: { token: null, open: false } });
    expect((await scrape(adminOnly)).status).toBe(401);
    expect((await scrape(adminOnly, { authorization: `Bearer ${api.admin}` })).status).toBe(200);
  });

  it('is open by default only on a loopback bind; a token file always locks it', () => {
    expect(loadConfig({}).metrics).toEqual({ token: null, open: true });
    expect(loadConfig({ MACHETE_BIND: '0.0.0.0' }).metrics).toEqual({ token: null, open: false });
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'machete-metrics-')), 'token');
    writeFileSync(file, 'a-long-enough-scrape-token\n');
    chmodSync(file, 0o600);
    expect(loadConfig({ MACHETE_METRICS_TOKEN_FILE: file }).metrics).toEqual({ token: 'a-long-enough-scrape-token', open: false });
    writeFileSync(file, 'short');
    expect(() => loadConfig({ MACHETE_METRICS_TOKEN_FILE: file })).toThrow(/MACHETE_METRICS_TOKEN_FILE/);
  });
});

describe('/api/ready', () => {
  it('is ready when the database answers and every migration is applied', async () => {
    const r = await api.call('GET', '/api/ready', undefined, null);
    expect(r).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('is not ready (503, with the reason) when a committed migration is missing', async () => {
    const database = await createDb({ driver: 'pglite' });
    const own = await makeApi({ database });
    try {
      await database.db.execute('delete from drizzle.__drizzle_migrations where created_at = (select max(created_at) from drizzle.__drizzle_migrations)');
      const r = await own.call('GET', '/api/ready', undefined, null);
      expect(r).toMatchObject({ status: 503, body: { status: 'not_ready', reason: 'database migrations not applied' } });
    } finally {
      await own.close();
    }
  }, 60_000);

  it('is not ready (503) once the database is closed, while health still answers', async () => {
    const own = await makeApi();
    await own.close();
    const r = await own.call('GET', '/api/ready', undefined, null);
    expect(r).toMatchObject({ status: 503, body: { status: 'not_ready', reason: 'database not answering' } });
    expect((await own.call('GET', '/api/health', undefined, null)).status).toBe(200);
  }, 60_000);
});
