import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { loadAgentConfig } from '../../agent/src/config.ts';
import { startAgent } from '../../agent/src/main.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// Host identity (issue 5): a credential bound to the host, kept in MACHETE_STATE_DIR, renewed
// before it expires, and dead the moment an operator removes the host. Credentials live 6 s here.
const TTL_SECONDS = 6;
let cluster: TestCluster;
const stateDir = () => path.join(cluster.dir, 'agent');
const credential = () => JSON.parse(readFileSync(path.join(stateDir(), 'credential.json'), 'utf8')) as { hostId: string; token: string; expiresAt: string };
const renew = (token: string) => fetch(`${cluster.url}/api/v1/agent/renew`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
/** The status of a WebSocket upgrade on the agent endpoint with this token (101 when accepted). */
const upgrade = (token: string) =>
  new Promise<number>((resolve) => {
    const ws = new WebSocket(`${cluster.url.replace(/^http/, 'ws')}/api/v1/agent/connect`, { headers: { authorization: `Bearer ${token}` } });
    ws.on('upgrade', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(0));
  });
/** An agent that holds only its stored credential: no join token to fall back on. */
const agentWithoutJoinToken = () =>
  startAgent(loadAgentConfig({ DOCKER_HOST: `unix://${inject('dockerSocket')}`, MACHETE_LOG_LEVEL: 'silent', MACHETE_HOST_NAME: 'e2e-host' }, { server: cluster.url, stateDir: stateDir() }), { log: createLogger('silent') });
const hostStatus = async (id: string) => (await cluster.api('GET', `/api/v1/hosts/${id}`)).body?.status;

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket'), env: { MACHETE_AGENT_TOKEN_TTL_SECONDS: String(TTL_SECONDS) } });
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await hostStatus(cluster.agent!.hostId)) === 'ready', 'host ready');
});
afterAll(() => cluster?.close());

describe('host identity', () => {
  it('renews the credential before it expires, keeps it 0600 on disk, and reconnects with it after the first one expired', async () => {
    const first = credential();
    expect(first.hostId).toBe(cluster.agent!.hostId);
    const renewed = await waitFor(async () => (credential().token !== first.token ? credential() : null), 'a renewed credential', 15_000, 200);
    expect(renewed.hostId).toBe(first.hostId);
    expect(Date.parse(renewed.expiresAt)).toBeGreaterThan(Date.parse(first.expiresAt));
    expect(Date.parse(first.expiresAt) - Date.now()).toBeGreaterThan(0); // renewed while the old one still worked
    expect(statSync(path.join(stateDir(), 'credential.json')).mode & 0o777).toBe(0o600);

    // Past the first credential's lifetime (and the 5 s clock-skew tolerance): it is refused, the agent is not.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(first.expiresAt) - Date.now()) + 6_500));
    expect((await renew(first.token)).status).toBe(401);
    expect(await upgrade(first.token)).toBe(401);
    expect(await hostStatus(first.hostId)).toBe('ready');

    // A restarted agent with no join token comes back as the same host, on what it stored.
    await cluster.stopAgent();
    cluster.agent = await agentWithoutJoinToken();
    expect(cluster.agent.hostId).toBe(first.hostId);
    await waitFor(async () => cluster.server!.hub.connectedHosts().has(first.hostId), 'the same host connected again', 10_000, 50);
    expect((await cluster.api('GET', '/api/v1/hosts')).body).toHaveLength(1);
  }, 60_000);

  it('stops a removed host’s credential at once: its session is closed, renewals and connects are refused', async () => {
    const { hostId, token } = credential();
    expect(await upgrade(token)).toBe(101);
    await waitFor(async () => cluster.server!.hub.connectedHosts().has(hostId), 'the agent connected', 10_000, 50);
    expect((await cluster.api('DELETE', `/api/v1/hosts/${hostId}`)).status).toBe(204);
    await waitFor(async () => !cluster.server!.hub.connectedHosts().has(hostId), 'the removed host’s session closed', 5_000, 50);
    expect((await renew(token)).status).toBe(401);
    expect(await upgrade(token)).toBe(401);
    // The agent holds no join token: it cannot come back as a new host either.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await cluster.api('GET', '/api/v1/hosts')).body).toEqual([]);
  }, 30_000);
});

describe('join tokens', () => {
  const enroll = (token: string, hostName: string) =>
    fetch(`${cluster.url}/api/v1/agent/enroll`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ hostName }) });

  it('a single-use token enrolls exactly one host, even when five agents race with it; a plain one enrolls many until it expires', async () => {
    const once = await cluster.api('POST', '/api/v1/hosts/join-tokens', { ttlSeconds: 600, singleUse: true });
    expect(once).toMatchObject({ status: 201, body: { singleUse: true } });
    const raced = await Promise.all(Array.from({ length: 5 }, (_, i) => enroll(once.body.token, `race-${i}`).then((r) => r.status)));
    expect(raced.filter((s) => s === 201)).toHaveLength(1);
    expect(raced.filter((s) => s === 401)).toHaveLength(4);
    expect((await enroll(once.body.token, 'late')).status).toBe(401);

    const plain = await cluster.api('POST', '/api/v1/hosts/join-tokens', { ttlSeconds: 600 });
    expect(plain.body.singleUse).toBe(false);
    expect([(await enroll(plain.body.token, 'p1')).status, (await enroll(plain.body.token, 'p2')).status]).toEqual([201, 201]);
    const names = (await cluster.api('GET', '/api/v1/hosts')).body.map((h: { name: string }) => h.name);
    expect(names.filter((n: string) => n.startsWith('race-'))).toHaveLength(1);
    expect(names).toEqual(expect.arrayContaining(['p1', 'p2']));
    expect(names).not.toContain('late');
  });
});
