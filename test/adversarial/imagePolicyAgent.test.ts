import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// AGT of SECURITY-CASES 16 through the whole stack: the control plane allows any image (no
// MACHETE_ALLOWED_IMAGES of its own, as a compromised or misconfigured one would), the agent allows
// only the run's test image. A replica and an invocation of another image are refused by the agent,
// which reports why; nothing is created on the engine. Without the agent's check the reason would
// be "image not found" (the image is not on the engine), so the reason is what proves the control.
let cluster: TestCluster;
let hostId = '';
const EVIL = 'evil.example.com/machete/x:1';

beforeAll(async () => {
  cluster = new TestCluster({
    dockerSocket: inject('dockerSocket'),
    env: { MACHETE_RATE_LIMIT_PER_SECOND: '0' },
    agentEnv: { MACHETE_ALLOWED_IMAGES: inject('testImage'), MACHETE_HOST_NAME: 'image-agt-host' },
  });
  await cluster.startServer();
  hostId = (await cluster.startAgent()).hostId;
  await waitFor(async () => (await cluster.api('GET', `/api/v1/hosts/${hostId}`)).body.status === 'ready', 'host ready');
}, 60_000);
afterAll(() => cluster?.close());

const toolContainers = (name: string) => cluster.docker.listContainers({ all: true, filters: { label: [`machete.tool=${name}`, `machete.host=${hostId}`] } });

describe('image allowlist on the agent (case 16, AGT)', () => {
  it('refuses a replica of an image outside its MACHETE_ALLOWED_IMAGES, says why, and creates nothing', async () => {
    expect((await cluster.api('PUT', '/api/v1/tools/img-agt', { image: EVIL, command: ['sleep', '3600'] })).status).toBe(201);
    expect((await cluster.api('PUT', '/api/v1/tools/img-agt/deployment', { replicas: 1 })).status).toBe(200);
    const inst = await waitFor(async () => {
      const [i] = (await cluster.api('GET', '/api/v1/instances?tool=img-agt')).body;
      return i?.reason ? i : null;
    }, 'the instance reported with a reason');
    expect(inst.state).toBe('failed');
    expect(inst.reason).toMatch(/^refused: image is not allowed on this host \(MACHETE_ALLOWED_IMAGES\)$/);
    expect(await toolContainers('img-agt')).toEqual([]);
  }, 60_000);

  it('refuses an invocation of such an image with the same reason, and runs an allowed one', async () => {
    expect((await cluster.api('PUT', '/api/v1/tools/img-agt-inv', { image: EVIL, command: ['echo', 'ran'], timeoutSeconds: 20 })).status).toBe(201);
    const r = (await cluster.api('POST', '/api/v1/tools/img-agt-inv/invoke', {})).body;
    expect(r, JSON.stringify(r)).toMatchObject({ status: 'failed', exitCode: null, stdout: '' });
    expect(r.reason).toMatch(/image is not allowed on this host \(MACHETE_ALLOWED_IMAGES\)/);
    expect(await toolContainers('img-agt-inv')).toEqual([]);
    // The same host runs the image it allows: the refusal is the allowlist, not a broken agent.
    expect((await cluster.api('PUT', '/api/v1/tools/img-ok', { image: inject('testImage'), command: ['echo', 'ran'], timeoutSeconds: 20 })).status).toBe(201);
    expect((await cluster.api('POST', '/api/v1/tools/img-ok/invoke', {})).body).toMatchObject({ status: 'succeeded', stdout: 'ran\n' });
  }, 60_000);
});
