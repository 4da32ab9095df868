import { Writable } from 'node:stream';
import { eq } from 'drizzle-orm';
import { createLogger } from '../../apps/api/src/logger.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secrets } from '../../db/src/index.ts';
import { loadConfig } from '../../apps/api/src/config.ts';
import { startServer, type RunningServer } from '../../apps/api/src/server.ts';
import { createSecretCipher } from '../../apps/api/src/secrets/cipher.ts';
import { currentRevision } from '../../apps/api/src/services/revision.ts';
import type { DesiredInstance } from '../../protocol/src/index.ts';
import { freePort, waitFor } from '../helpers/cluster.ts';
import { enroll, eventMark, eventsSince, FakeAgent } from './helpers.ts';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Secrets through the API: never returned, never logged, never in events, only in the frames of
// the host that runs a tool naming them; plus the image allowlist (case 16) at the API.
const VALUE = 'hunter2-Zq9!kP3x-unique-secret-value';
const ROTATED = 'rotated-Yw7@nM2v-another-secret-value';
const logLines: string[] = [];
const capture = new Writable({ write(chunk, _enc, cb) { logLines.push(chunk.toString()); cb(); } });
let server: RunningServer;
let url = '';
let admin = '';
const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-secrets-'));

async function api(method: string, p: string, body?: unknown, token = admin): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${url}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, text };
}
const token = async (role: 'operator' | 'viewer' | 'invoker') => (await server.tokens.issue({ kind: 'user', role, ttlSeconds: 600 })).token;
/** Frames the hub sent to agents, heartbeats aside (those are sent on a timer whatever happens). */
async function framesSent(): Promise<number> {
  const metric = server.deps.metrics.registry.getSingleMetric('machete_ws_frames_sent_total');
  const values = (await metric!.get()).values;
  return values.filter((v) => v.labels.type !== 'heartbeat').reduce((n, v) => n + v.value, 0);
}
const instancesIn = (a: FakeAgent): DesiredInstance[] => a.frames.flatMap((f) => (f.type === 'snapshot' ? f.instances : f.type === 'delta' ? f.upserts : []));

async function agentFor(name: string) {
  const h = await enroll(url, await server.mintJoinToken(), name);
  const agent = await FakeAgent.connect(`${url.replace('http', 'ws')}/api/v1/agent/connect`, h.token);
  agent.hello({ cpus: 4, memoryMb: 4096 });
  await agent.next('snapshot');
  await waitFor(async () => (await api('GET', `/api/v1/hosts/${h.hostId}`)).body.status === 'ready', 'host ready');
  return { ...h, agent };
}

beforeAll(async () => {
  const port = await freePort();
  const config = loadConfig({
    MACHETE_PORT: String(port),
    MACHETE_DATA_DIR: path.join(dir, 'data'),
    MACHETE_LOCAL_AGENT: 'false',
    MACHETE_HEARTBEAT_MS: '60000',
    MACHETE_ALLOWED_IMAGES: 'machete/*, registry.example.com/*:1.*',
  });
  server = await startServer(config, { log: createLogger('trace', 'machete', capture) });
  url = server.url;
  admin = (await server.tokens.issue({ kind: 'user', role: 'admin', ttlSeconds: 600 })).token;
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('secrets API', () => {
  it('stores a value encrypted, answers with metadata only, and counts versions by value', async () => {
    const op = await token('operator');
    const created = await api('PUT', '/api/v1/secrets/api-key', { value: VALUE }, op);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'api-key', version: 1, sizeBytes: Buffer.byteLength(VALUE) });
    expect(created.body).not.toHaveProperty('value');
    expect((await api('PUT', '/api/v1/secrets/api-key', { value: VALUE }, op)).body.version).toBe(1);

    const listed = await api('GET', '/api/v1/secrets', undefined, op);
    expect(listed.status).toBe(200);
    expect(listed.body.map((s: { name: string }) => s.name)).toContain('api-key');
    expect(listed.text).not.toContain(VALUE);

    const [row] = await server.database.db.select().from(secrets).where(eq(secrets.name, 'api-key'));
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(VALUE);
    expect(stored).not.toContain(Buffer.from(VALUE).toString('base64'));
    expect(row!.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('binds a ciphertext to its name and its key: moved or re-keyed rows do not decrypt', () => {
    const c = createSecretCipher(new Uint8Array(32).fill(7));
    const sealed = c.seal('a', VALUE);
    expect(c.open('a', sealed)).toBe(VALUE);
    expect(() => c.open('b', sealed)).toThrow();
    const flipped = Buffer.from(sealed.ciphertext, 'base64');
    flipped[0]! ^= 1;
    expect(() => c.open('a', { ...sealed, ciphertext: flipped.toString('base64') })).toThrow();
    expect(() => createSecretCipher(new Uint8Array(32).fill(8)).open('a', sealed)).toThrow(/another key/);
    expect(c.seal('a', VALUE).nonce).not.toBe(sealed.nonce);
  });

  it('refuses viewers and invokers on every secrets route (case 38)', async () => {
    for (const role of ['viewer', 'invoker'] as const) {
      const t = await token(role);
      expect((await api('GET', '/api/v1/secrets', undefined, t)).status).toBe(403);
      expect((await api('PUT', '/api/v1/secrets/x1', { value: 'v' }, t)).status).toBe(403);
      expect((await api('DELETE', '/api/v1/secrets/api-key', undefined, t)).status).toBe(403);
    }
    expect((await api('GET', '/api/v1/secrets', undefined, admin)).body.some((s: { name: string }) => s.name === 'x1')).toBe(false);
  });

  it('refuses bad names, unknown fields and oversized values with 400 naming the field', async () => {
    expect((await api('PUT', '/api/v1/secrets/Bad..Name', { value: 'v' })).status).toBe(400);
    const extra = await api('PUT', '/api/v1/secrets/ok', { value: 'v', other: 1 });
    expect(extra).toMatchObject({ status: 400, body: { error: { details: { field: 'other' } } } });
    const big = await api('PUT', '/api/v1/secrets/big', { value: 'é'.repeat(40_000) });
    expect(big).toMatchObject({ status: 400, body: { error: { details: { field: 'value' } } } });
  });

  it('refuses a tool naming a missing secret (400 secrets.N) and the deletion of a secret a tool names (409)', async () => {
    const missing = await api('PUT', '/api/v1/tools/needs-missing', { image: 'machete/busybox:test', secrets: ['api-key', 'nope'] });
    expect(missing).toMatchObject({ status: 400, body: { error: { details: { field: 'secrets.1' } } } });
    expect((await api('GET', '/api/v1/tools/needs-missing')).status).toBe(404);

    await api('PUT', '/api/v1/secrets/short-lived', { value: 'x' });
    expect((await api('PUT', '/api/v1/tools/holder', { image: 'machete/busybox:test', secrets: ['short-lived'] })).status).toBe(201);
    expect((await api('DELETE', '/api/v1/secrets/short-lived')).status).toBe(409);
    expect((await api('DELETE', '/api/v1/tools/holder')).status).toBe(204);
    expect((await api('DELETE', '/api/v1/secrets/short-lived')).status).toBe(204);
    expect((await api('DELETE', '/api/v1/secrets/short-lived')).status).toBe(404);
  });

  it('sends values only to the host running the tool, and rolls it with the new version on rotation', async () => {
    const a = await agentFor('sec-a');
    const b = await agentFor('sec-b');
    expect((await api('PUT', '/api/v1/tools/reader', { image: 'machete/busybox:test', secrets: ['api-key'], placement: { labels: { role: 'sec-a' } } })).status).toBe(201);
    expect((await api('PUT', '/api/v1/tools/other', { image: 'machete/busybox:test', placement: { labels: { role: 'sec-b' } } })).status).toBe(201);
    await api('PUT', '/api/v1/tools/reader/deployment', { replicas: 1 });
    await api('PUT', '/api/v1/tools/other/deployment', { replicas: 1 });

    const first = await waitFor(async () => instancesIn(a.agent).find((i) => i.tool === 'reader'), 'reader on host a');
    expect(first.secrets).toEqual([{ name: 'api-key', value: VALUE, version: 1 }]);
    await waitFor(async () => instancesIn(b.agent).find((i) => i.tool === 'other'), 'other on host b');
    expect(JSON.stringify(b.agent.frames)).not.toContain(VALUE);
    expect(instancesIn(b.agent).every((i) => i.secrets === undefined)).toBe(true);

    expect((await api('PUT', '/api/v1/secrets/api-key', { value: ROTATED })).body.version).toBe(2);
    const rolled = await waitFor(async () => instancesIn(a.agent).find((i) => i.tool === 'reader' && i.secrets?.[0]?.version === 2), 'rotated value on host a');
    expect(rolled.secrets).toEqual([{ name: 'api-key', value: ROTATED, version: 2 }]);
    expect(rolled.revision).toBeGreaterThan(first.revision);
    expect(JSON.stringify(b.agent.frames)).not.toContain(ROTATED);
    a.agent.ws.close();
    b.agent.ws.close();
  });

  it('never writes a value into events or logs', async () => {
    const mark = await eventMark(server.deps.events);
    await api('PUT', '/api/v1/secrets/logged', { value: VALUE });
    await api('PUT', '/api/v1/secrets/logged', { value: 'x'.repeat(70_000) }); // refused: 400 audited
    await server.deps.events.flush();
    const all = await server.deps.events.list({ limit: 10_000 });
    const text = JSON.stringify(all);
    expect(text).not.toContain(VALUE);
    expect(text).not.toContain(ROTATED);
    expect(text).not.toContain('x'.repeat(100));
    const puts = await eventsSince(server.deps.events, mark, (e) => e.action === 'secret.put');
    expect(puts).toEqual([expect.objectContaining({ target: 'logged', outcome: 'ok', data: expect.objectContaining({ version: 1 }) })]);

    // The logger redacts secret-shaped fields wherever they appear.
    server.log.info({ value: VALUE, frame: { instances: [{ secrets: [{ value: VALUE }] }] }, invocation: { secrets: [{ value: VALUE }] } }, 'redaction probe');
    expect(logLines.length).toBeGreaterThan(0);
    const logs = logLines.join('');
    expect(logs).toContain('redaction probe');
    expect(logs).not.toContain(VALUE);
    expect(logs).not.toContain(ROTATED);
  });
});

describe('image allowlist at the API (case 16)', () => {
  it('refuses images outside MACHETE_ALLOWED_IMAGES with 400 naming image, stores nothing, audits the refusal', async () => {
    const mark = await eventMark(server.deps.events);
    for (const image of ['busybox', 'evil.example.com/machete/x:1', 'registry.example.com/app:2.0', 'registry.example.com/app', 'machete.evil.com/x']) {
      const r = await api('PUT', '/api/v1/tools/img-refused', { image });
      expect(r, image).toMatchObject({ status: 400, body: { error: { details: { field: 'image' } } } });
    }
    expect((await api('GET', '/api/v1/tools/img-refused')).status).toBe(404);
    const refused = await eventsSince(server.deps.events, mark, (e) => e.outcome === 'refused' && e.action === 'PUT /api/v1/tools/:name');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.reason).toMatch(/^image: /);
    expect((await api('PUT', '/api/v1/tools/img-ok', { image: 'machete/busybox:test' })).status).toBe(201);
    expect((await api('PUT', '/api/v1/tools/img-ok2', { image: 'registry.example.com/team/app:1.4' })).status).toBe(201);
  });

  // As test/adversarial/specPolicy.test.ts does for the path policy: a refused image sends nothing
  // to agents. The target is a deployed tool whose host is connected, so a slip would be a frame.
  it('sends nothing to agents when an image is refused: revision, frames and the hub counter stay, and move for a valid image', async () => {
    const h = await agentFor('img-host');
    expect((await api('PUT', '/api/v1/tools/img-victim', { image: 'machete/busybox:test', placement: { labels: { role: 'img-host' } } })).status).toBe(201);
    expect((await api('PUT', '/api/v1/tools/img-victim/deployment', { replicas: 1 })).status).toBe(200);
    await waitFor(async () => instancesIn(h.agent).find((i) => i.tool === 'img-victim'), 'img-victim sent to its host');
    const observe = async () => {
      const frames = h.agent.frames.filter((f) => f.type !== 'heartbeat');
      const victim = (await api('GET', '/api/v1/tools/img-victim')).body;
      return {
        revision: await currentRevision(server.deps.db),
        agentFrames: frames.length,
        agentRevision: Math.max(0, ...frames.map((f) => ('revision' in f && typeof f.revision === 'number' ? f.revision : 0))),
        hubFramesSent: await framesSent(),
        victim: { version: victim.version, image: victim.spec.image },
      };
    };
    // Let the deployment's own sends settle before the baseline.
    await new Promise((r) => setTimeout(r, 500));
    const before = await observe();
    const mark = await eventMark(server.deps.events);
    for (const image of ['busybox', 'evil.example.com/machete/x:1', 'registry.example.com/app:2.0', 'machete.evil.com/x']) {
      for (const target of ['img-victim', 'img-new']) {
        const r = await api('PUT', `/api/v1/tools/${target}`, { image, placement: { labels: { role: 'img-host' } } });
        expect(r, `${image} → ${target}`).toMatchObject({ status: 400, body: { error: { details: { field: 'image' } } } });
      }
    }
    expect((await api('GET', '/api/v1/tools/img-new')).status).toBe(404);
    const refused = await eventsSince(server.deps.events, mark, (e) => e.outcome === 'refused' && e.action === 'PUT /api/v1/tools/:name');
    expect(refused.reduce((n, e) => n + Number(e.data?.coalesced ?? 1), 0)).toBe(8);
    await new Promise((r) => setTimeout(r, 500));
    expect(await observe()).toEqual(before);

    // The same observations move when an allowed image is accepted.
    const ok = await api('PUT', '/api/v1/tools/img-victim', { image: 'registry.example.com/team/app:1.5', placement: { labels: { role: 'img-host' } } });
    expect(ok.status).toBe(200);
    expect(await currentRevision(server.deps.db)).toBeGreaterThan(before.revision);
    await waitFor(async () => (await framesSent()) > before.hubFramesSent, 'a frame sent to the agent');
    const after = await waitFor(async () => {
      const o = await observe();
      return o.agentRevision > before.agentRevision ? o : null;
    }, 'the agent received the new revision');
    expect(after.agentFrames).toBeGreaterThan(before.agentFrames);
    expect(instancesIn(h.agent).some((i) => i.tool === 'img-victim' && i.spec.image === 'registry.example.com/team/app:1.5')).toBe(true);
    h.agent.ws.close();
  });
});

describe('MACHETE_SECRETS_KEY_FILE', () => {
  it('refuses to start with a key file that is missing, short or readable by others, naming the variable', async () => {
    const base = { MACHETE_PORT: '0', MACHETE_DATA_DIR: path.join(dir, 'keytest'), MACHETE_LOCAL_AGENT: 'false' };
    const short = path.join(dir, 'short.key');
    const open = path.join(dir, 'open.key');
    writeFileSync(short, 'x'.repeat(16), { mode: 0o600 });
    writeFileSync(open, 'y'.repeat(48), { mode: 0o644 });
    chmodSync(open, 0o644);
    for (const [file, why] of [[path.join(dir, 'missing.key'), 'does not exist'], [short, 'shorter than 32 bytes'], [open, 'readable by group or others']] as const) {
      await expect(startServer(loadConfig({ ...base, MACHETE_SECRETS_KEY_FILE: file }), { log: createLogger('silent') })).rejects.toThrow(new RegExp(`MACHETE_SECRETS_KEY_FILE: secrets key .*${why}`));
    }
  });

  it('derives a key of its own: neither the signing key bytes nor a cipher of another file can open its rows', () => {
    const a = createSecretCipher(new Uint8Array(Buffer.from('a'.repeat(48))));
    const b = createSecretCipher(new Uint8Array(Buffer.from('b'.repeat(48))));
    expect(a.keyId).not.toBe(b.keyId);
    expect(() => b.open('n', a.seal('n', VALUE))).toThrow(/another key/);
  });
});
