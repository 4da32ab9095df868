import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';
import { enrollFake, FakeAgent } from '../helpers/fakeAgent.ts';

// /metrics of a listening control plane, with an agent speaking the real protocol over a real WebSocket.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: '/nonexistent' });
  await cluster.startServer();
});
afterAll(() => cluster?.close());

const scrape = async () => (await fetch(`${cluster.url}/metrics`)).text();
const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe('metrics of a running control plane', () => {
  it('counts a connected agent and the frames it exchanges, and forgets it when it leaves', async () => {
    expect(sample(await scrape(), 'machete_connected_agents')).toBe(0);
    const { token } = await enrollFake(cluster, 'metrics-host');
    const agent = await FakeAgent.connect(cluster, token);
    agent.hello();
    await agent.next('snapshot');
    const text = await waitFor(async () => {
      const t = await scrape();
      return sample(t, 'machete_connected_agents') === 1 ? t : null;
    }, 'agents gauge at 1');
    expect(sample(text, 'machete_ws_frames_received_total{type="hello"}')).toBe(1);
    expect(sample(text, 'machete_ws_frames_sent_total{type="welcome"}')).toBe(1);
    expect(sample(text, 'machete_ws_frames_sent_total{type="snapshot"}')).toBe(1);
    expect(sample(text, 'machete_hosts{status="ready"}')).toBe(1);

    agent.send('{not json');
    await agent.next('error');
    expect(sample(await scrape(), 'machete_ws_frames_dropped_total{direction="in",reason="invalid_frame"}')).toBe(1);

    agent.ws.close();
    await waitFor(async () => sample(await scrape(), 'machete_connected_agents') === 0, 'agents gauge back at 0');
  });

  it("turns the reconcile passes agents report with their heartbeats into a duration histogram and an error count", async () => {
    const before = await scrape();
    const { token } = await enrollFake(cluster, 'reconcile-host');
    const agent = await FakeAgent.connect(cluster, token);
    agent.hello();
    await agent.next('snapshot');
    agent.send({ type: 'heartbeat', at: Date.now(), reconcile: { seconds: [0.004, 0.02, 0.3], errors: 1 } });
    agent.send({ type: 'heartbeat', at: Date.now() });
    const count = 'machete_reconcile_pass_duration_seconds_count';
    const text = await waitFor(async () => {
      const t = await scrape();
      return sample(t, count) === sample(before, count) + 3 ? t : null;
    }, 'three passes counted');
    expect(sample(text, 'machete_reconcile_pass_duration_seconds_bucket{le="0.005"}')).toBe(sample(before, 'machete_reconcile_pass_duration_seconds_bucket{le="0.005"}') + 1);
    expect(sample(text, 'machete_reconcile_pass_duration_seconds_bucket{le="0.25"}')).toBe(sample(before, 'machete_reconcile_pass_duration_seconds_bucket{le="0.25"}') + 2);
    expect(sample(text, 'machete_reconcile_errors_total')).toBe(sample(before, 'machete_reconcile_errors_total') + 1);
    // A report outside its bounds is refused as a frame, not counted.
    agent.send({ type: 'heartbeat', at: Date.now(), reconcile: { seconds: [-1], errors: 0 } });
    await agent.next('error');
    expect(sample(await scrape(), count)).toBe(sample(text, count));
    agent.ws.close();
  });

  it('is open on the loopback bind and answers ready', async () => {
    const res = await fetch(`${cluster.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('# TYPE machete_http_request_duration_seconds histogram');
    const ready = await fetch(`${cluster.url}/api/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('asks for the scrape token when MACHETE_METRICS_TOKEN_FILE is set', async () => {
    const file = path.join(cluster.dir, 'metrics.token');
    writeFileSync(file, 'scrape-0123456789abcdef\n', { mode: 0o600 });
    const locked = new TestCluster({ dockerSocket: '/nonexistent', env: { MACHETE_METRICS_TOKEN_FILE: file } });
    try {
      await locked.startServer();
      expect((await fetch(`${locked.url}/metrics`)).status).toBe(401);
      const ok = await fetch(`${locked.url}/metrics`, { headers: { authorization: 'Bearer scrape-0123456789abcdef' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('machete_connected_agents 0');
    } finally {
      await locked.close();
    }
  });
});
