import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { eventMark, eventsSince, refusalsSince, withStatus } from './helpers.ts';

// Cases 24 and 48 over a real socket, and the audit trail across a restart: a control
// plane on PGlite in a data directory, with short header/request timeouts.
const HEADERS_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 1000;
let cluster: TestCluster;
let admin: string;

beforeAll(async () => {
  cluster = new TestCluster({
    dockerSocket: '/nonexistent',
    env: { MACHETE_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), MACHETE_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  });
  await cluster.startServer();
  admin = (await cluster.server!.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 3600 })).token;
});
afterAll(() => cluster?.close());

const events = () => cluster.server!.deps.events;

/** PUT of `bytes` bytes of body, either with Content-Length or chunked; resolves with the status. */
function putLarge(p: string, bytes: number, chunked: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = String(bytes);
    const req = http.request(`${cluster.url}${p}`, { method: 'PUT', headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    req.write('{"image":"machete/busybox:test","env":{"A":"');
    pump();
  });
}

/** A raw connection that sends a request slowly (or nothing); resolves when the server drops it. */
function slowClient(kind: 'idle' | 'headers' | 'body'): { closed: Promise<{ afterMs: number; answer: string }> } {
  const started = Date.now();
  const s = net.connect(Number(new URL(cluster.url).port), '127.0.0.1');
  let answer = '';
  let timer: NodeJS.Timeout | undefined;
  s.on('data', (d) => (answer += d.toString()));
  s.on('error', () => {});
  s.on('connect', () => {
    if (kind === 'headers') {
      s.write('GET /api/health HTTP/1.1\r\nHost: x\r\n');
      timer = setInterval(() => s.write('X-Slow: 1\r\n'), 100);
    } else if (kind === 'body') {
      s.write(`PUT /api/v1/tools/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
      timer = setInterval(() => s.write(' '), 100);
    }
  });
  return { closed: new Promise((resolve) => s.on('close', () => (clearInterval(timer), resolve({ afterMs: Date.now() - started, answer: answer.split('\r\n')[0] ?? '' })))) };
}

describe('HTTP transport', () => {
  it('refuses a 10 MB body with 413, with and without Content-Length, storing nothing (case 24)', async () => {
    const mark = await eventMark(events());
    expect(await putLarge('/api/v1/tools/big-cl', 10 * 1024 * 1024, false)).toBe(413);
    expect(await putLarge('/api/v1/tools/big-chunked', 10 * 1024 * 1024, true)).toBe(413);
    for (const name of ['big-cl', 'big-chunked']) expect((await cluster.api('GET', `/api/v1/tools/${name}`)).status).toBe(404);
    expect(await refusalsSince(events(), mark, withStatus(413, 'PUT /api/v1/tools/:name'))).toBe(2);
    const rows = await eventsSince(events(), mark, withStatus(413));
    expect(rows[0]!.actor).toBe('ip:127.0.0.1');
    expect((await cluster.api('GET', '/api/health')).status).toBe(200);
  });

  it('drops slow and half-open connections at the header/request timeouts while real clients are served (case 48)', async () => {
    const slow = [
      ...Array.from({ length: 100 }, () => slowClient('idle')),
      ...Array.from({ length: 100 }, () => slowClient('headers')),
      ...Array.from({ length: 20 }, () => slowClient('body')),
    ];
    // Meanwhile, real clients get answers promptly.
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      expect((await cluster.api('GET', '/api/v1/tools')).status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(HEADERS_TIMEOUT_MS);
      await new Promise((r) => setTimeout(r, 50));
    }
    const results = await Promise.all(slow.map((c) => c.closed));
    const slack = 1000; // the server checks expired connections every headersTimeout/4
    for (const r of results.slice(0, 200)) {
      expect(r.afterMs).toBeLessThan(HEADERS_TIMEOUT_MS + slack);
      expect(r.answer).toMatch(/^(HTTP\/1\.1 408|)/);
    }
    for (const r of results.slice(200)) expect(r.afterMs).toBeLessThan(REQUEST_TIMEOUT_MS + slack);
    expect((await cluster.api('GET', '/api/v1/tools/slow')).status).toBe(404);
  });
});

describe('audit trail', () => {
  it('shows refusals and changes on GET /events and to SSE followers, and keeps them across a restart', async () => {
    const controller = new AbortController();
    const seen: Array<{ action: string; outcome: string; data: { status?: number } | null }> = [];
    const res = await fetch(`${cluster.url}/api/v1/events?follow=true&limit=1`, { headers: { authorization: `Bearer ${admin}` }, signal: controller.signal });
    const reader = res.body!.getReader();
    const reading = (async () => {
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        buf += new TextDecoder().decode(value);
        for (const line of buf.split('\n')) if (line.startsWith('data: {')) seen.push(JSON.parse(line.slice(6)));
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
      }
    })();

    expect((await fetch(`${cluster.url}/api/v1/tools/audit-me`, { method: 'PUT', headers: { authorization: 'Bearer not.a.token' } })).status).toBe(401);
    expect((await cluster.api('PUT', '/api/v1/tools/audit-me', { image: 'machete/busybox:test', privileged: true })).status).toBe(400);
    expect((await cluster.api('PUT', '/api/v1/tools/audit-ok', { image: 'machete/busybox:test' })).status).toBe(201);
    const wanted = (list: typeof seen) =>
      list.some((e) => e.data?.status === 401) && list.some((e) => e.data?.status === 400) && list.some((e) => e.action === 'tool.put' && e.outcome === 'ok');
    await waitFor(async () => wanted(seen), 'the events on the SSE stream', 5000, 20);
    controller.abort();
    await reading;

    await cluster.stopServer();
    await cluster.startServer();
    const after = await cluster.api('GET', '/api/v1/events?limit=1000');
    expect(after.status).toBe(200);
    expect(wanted(after.body)).toBe(true);
    const refusal = after.body.find((e: { data: { status?: number } | null }) => e.data?.status === 400);
    expect(refusal).toMatchObject({ kind: 'audit', outcome: 'refused', action: 'PUT /api/v1/tools/:name', target: '/api/v1/tools/audit-me' });
    expect(refusal.actor).toMatch(/^token:/);
    expect(refusal.reason).toContain('privileged');
  });
});
