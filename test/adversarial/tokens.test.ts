import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../apps/api/src/http/app.ts';
import { loadConfig } from '../../apps/api/src/config.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { startServer } from '../../apps/api/src/server.ts';
import { wire } from '../../apps/api/src/wiring.ts';
import { makeApi } from '../helpers/api.ts';
import { claimsOf, craftJwt, eventMark, refusalsSince, withStatus } from './helpers.ts';

// Cases 29–38 of SECURITY-CASES.md: tokens crafted with jose and by hand.
let api: Awaited<ReturnType<typeof makeApi>>;
let valid: Record<string, unknown>; // claims of a real admin token, to re-sign with one thing changed
const USER_HEADER = { alg: 'HS256', typ: 'machete-user+jwt' };
const spec = { image: 'machete/busybox:test' };
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  api = await makeApi();
  valid = claimsOf(api.admin);
}, 60_000);
afterAll(() => api?.close());

/** Each token is used for a mutating call: 401 every time, nothing stored, every refusal audited. */
async function expectUnauthenticated(name: string, tokens: string[]): Promise<void> {
  const mark = await eventMark(api.deps.events);
  for (const t of tokens) {
    const r = await api.call('PUT', `/api/v1/tools/${name}`, spec, t);
    expect(r.status, `token ${t.slice(0, 80)}…`).toBe(401);
    expect(r.body.error.code).toBe('unauthenticated');
  }
  expect((await api.call('GET', `/api/v1/tools/${name}`)).status).toBe(404);
  expect(await refusalsSince(api.deps.events, mark, withStatus(401, 'PUT /api/v1/tools/:name'))).toBe(tokens.length);
}

describe('tokens', () => {
  it('accepts the hand-made control token, so every refusal below is for its one defect', async () => {
    const control = craftJwt(USER_HEADER, valid, api.key);
    expect((await api.call('GET', '/api/v1/tools', undefined, control)).status).toBe(200);
  });

  it('refuses unsigned alg:none tokens in any spelling (case 29)', async () => {
    await expectUnauthenticated('t29', ['none', 'None', 'NONE', 'nOnE'].map((alg) => craftJwt({ alg, typ: USER_HEADER.typ }, valid, null)));
  });

  it('refuses HS256 tokens signed with a wrong or an empty key (case 30)', async () => {
    await expectUnauthenticated('t30', [
      craftJwt(USER_HEADER, valid, randomBytes(32)),
      craftJwt(USER_HEADER, valid, new Uint8Array(0)),
      craftJwt(USER_HEADER, valid, api.key.slice(0, 31)),
    ]);
  });

  it('refuses other algorithms and unknown critical headers (case 31)', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const rs256 = await new SignJWT(valid).setProtectedHeader({ alg: 'RS256', typ: USER_HEADER.typ }).sign(privateKey);
    await expectUnauthenticated('t31', [
      rs256,
      craftJwt({ alg: 'HS512', typ: USER_HEADER.typ }, valid, api.key, 'sha512'),
      craftJwt({ alg: 'HS384', typ: USER_HEADER.typ }, valid, api.key, 'sha384'),
      craftJwt({ ...USER_HEADER, crit: ['x-unknown'], 'x-unknown': true }, valid, api.key),
      craftJwt({ ...USER_HEADER, crit: ['exp'] }, valid, api.key),
    ]);
  });

  it('refuses hostile kid values, even when the signature is otherwise right (case 32)', async () => {
    await expectUnauthenticated('t32', [
      craftJwt({ ...USER_HEADER, kid: '../../dev/null' }, valid, new Uint8Array(0)),
      craftJwt({ ...USER_HEADER, kid: '../../dev/null' }, valid, api.key),
      craftJwt({ ...USER_HEADER, kid: "' OR 1=1--" }, valid, api.key),
      craftJwt({ ...USER_HEADER, kid: 'k'.repeat(10 * 1024) }, valid, api.key),
    ]);
  });

  it('ignores jku, x5u and embedded jwk: the pinned key decides, and such headers are refused (case 33)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = await exportJWK(publicKey);
    const selfSigned = await new SignJWT(valid).setProtectedHeader({ alg: 'RS256', typ: USER_HEADER.typ, jwk }).sign(privateKey);
    const octJwk = { kty: 'oct', k: Buffer.from('attacker-key-attacker-key-attack').toString('base64url') };
    await expectUnauthenticated('t33', [
      selfSigned,
      craftJwt({ ...USER_HEADER, jwk: octJwk }, valid, Buffer.from('attacker-key-attacker-key-attack')),
      craftJwt({ ...USER_HEADER, jku: 'http://127.0.0.1:1/jwks.json' }, valid, randomBytes(32)),
      craftJwt({ ...USER_HEADER, x5u: 'http://127.0.0.1:1/cert.pem' }, valid, randomBytes(32)),
      craftJwt({ ...USER_HEADER, jku: 'http://127.0.0.1:1/jwks.json' }, valid, api.key),
      craftJwt({ ...USER_HEADER, x5c: ['MIIB'] }, valid, api.key),
    ]);
  });

  it('refuses a token without exp, an expired one and one not yet valid (case 34)', async () => {
    const { exp: _exp, ...noExp } = valid;
    await expectUnauthenticated('t34', [
      craftJwt(USER_HEADER, noExp, api.key),
      craftJwt(USER_HEADER, { ...valid, exp: now() - 60 }, api.key),
      craftJwt(USER_HEADER, { ...valid, nbf: now() + 3600 }, api.key),
      craftJwt(USER_HEADER, { ...valid, exp: 'never' }, api.key),
    ]);
  });

  it('refuses a wrong iss, aud or typ, and a token of another class (case 35)', async () => {
    const agent = await api.deps.tokens.issue({ kind: 'agent', hostId: 'h0', ttlSeconds: 60 });
    const join = await api.deps.tokens.issue({ kind: 'join', ttlSeconds: 60 });
    await expectUnauthenticated('t35', [
      craftJwt(USER_HEADER, { ...valid, iss: 'evil' }, api.key),
      craftJwt(USER_HEADER, { ...valid, aud: 'machete:agent' }, api.key),
      craftJwt(USER_HEADER, { ...valid, aud: ['machete:join'] }, api.key),
      craftJwt({ alg: 'HS256', typ: 'JWT' }, valid, api.key),
      craftJwt({ alg: 'HS256' }, valid, api.key),
      craftJwt({ alg: 'HS256', typ: 'machete-agent+jwt' }, { ...valid, aud: 'machete:agent', kind: 'agent' }, api.key),
      agent.token,
      join.token,
    ]);
    // The reverse: a user token where a join token belongs, and an agent token there too.
    const mark = await eventMark(api.deps.events);
    for (const t of [api.admin, agent.token]) {
      expect((await api.call('POST', '/api/v1/agent/enroll', { hostName: 'x' }, t)).status).toBe(401);
    }
    expect((await api.call('GET', '/api/v1/hosts')).body).toEqual([]);
    expect(await refusalsSince(api.deps.events, mark, withStatus(401, 'POST /api/v1/agent/enroll'))).toBe(2);
  });

  it('refuses a revoked token from the next request on, on every replica (case 36)', async () => {
    const issued = await api.call('POST', '/api/v1/tokens', { role: 'operator', name: 'soon-revoked' });
    // A second control plane on the same database and key, as a replica would be.
    const replica = createApp(wire({ db: api.database.db, key: api.key, log: createLogger('silent'), heartbeatMs: 1000 }).deps);
    const viaReplica = (t: string) => replica.request('/api/v1/tools', { headers: { authorization: `Bearer ${t}` } });
    expect((await api.call('GET', '/api/v1/tools', undefined, issued.body.token)).status).toBe(200);
    expect((await viaReplica(issued.body.token)).status).toBe(200);
    expect((await api.call('DELETE', `/api/v1/tokens/${issued.body.id}`)).status).toBe(204);
    await expectUnauthenticated('t36', [issued.body.token]);
    expect((await viaReplica(issued.body.token)).status).toBe(401);
  });

  it('refuses a viewer on mutating routes and an invoker on tools with 403, audited (case 38)', async () => {
    const viewer = await api.token('viewer');
    const invoker = await api.token('invoker');
    const mark = await eventMark(api.deps.events);
    const calls: Array<[string, string, unknown, string]> = [
      ['PUT', '/api/v1/tools/t38', spec, viewer],
      ['PUT', '/api/v1/tools/t38/deployment', { replicas: 1 }, viewer],
      ['POST', '/api/v1/tokens', { role: 'admin' }, viewer],
      ['POST', '/api/v1/hosts/join-tokens', {}, viewer],
      ['GET', '/api/v1/tools', undefined, invoker],
      ['PUT', '/api/v1/tools/t38', spec, invoker],
    ];
    for (const [method, p, body, t] of calls) expect((await api.call(method, p, body, t)).status).toBe(403);
    expect((await api.call('GET', '/api/v1/tools/t38')).status).toBe(404);
    expect(await refusalsSince(api.deps.events, mark, (e) => e.data?.status === 403 && e.actor.startsWith('token:'))).toBe(calls.length);
  });
});

describe('signing key file (case 37)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'machete-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const keyFile = (name: string, content: string | null, mode = 0o600) => {
    const file = path.join(dir, name);
    if (content !== null) {
      writeFileSync(file, content, { mode });
      chmodSync(file, mode);
    }
    return file;
  };
  const start = (env: Record<string, string>) =>
    startServer(loadConfig({ MACHETE_PORT: '0', MACHETE_DATA_DIR: path.join(dir, 'data'), MACHETE_LOCAL_AGENT: 'false', ...env }), { log: createLogger('silent') });

  it.each([
    ['missing', () => keyFile('missing.key', null), /does not exist/],
    ['empty', () => keyFile('empty.key', ''), /is empty/],
    ['only whitespace', () => keyFile('blank.key', ' \n\t\n'), /is empty/],
    ['shorter than 32 bytes', () => keyFile('short.key', 'x'.repeat(31)), /shorter than 32 bytes/],
    ['readable by the group', () => keyFile('group.key', 'x'.repeat(48), 0o640), /readable by group or others/],
    ['readable by others', () => keyFile('world.key', 'x'.repeat(48), 0o604), /readable by group or others/],
    ['a directory', () => dir, /not a regular file/],
  ])('refuses to start when the key file is %s, saying why', async (_what, make, reason) => {
    await expect(start({ SECRET_KEY_FILE: make() })).rejects.toThrow(reason);
  });

  it('refuses a generated default key that was later made readable by others', async () => {
    const dataDir = path.join(dir, 'default');
    const first = await start({ MACHETE_DATA_DIR: dataDir });
    await first.close();
    chmodSync(path.join(dataDir, 'secret.key'), 0o644);
    await expect(start({ MACHETE_DATA_DIR: dataDir })).rejects.toThrow(/readable by group or others/);
  }, 60_000);
});
