import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// A real agent on a real engine: its reconcile passes reach the control plane's /metrics
// through its heartbeats (the control plane never sees the loop otherwise).
let cluster: TestCluster;
beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  await cluster.startServer();
  await cluster.startAgent();
});
afterAll(() => cluster?.close());

const series = 'machete_reconcile_pass_duration_seconds_count';
const passes = async () => {
  const text = await (await fetch(`${cluster.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe('reconcile metrics from a real agent', () => {
  it('counts the passes the agent ran to start a replica, with their durations', async () => {
    const start = await passes();
    expect((await cluster.api('PUT', '/api/v1/tools/metered', { image: inject('testImage'), command: ['sleep', '3600'] })).status).toBe(201);
    expect((await cluster.api('PUT', '/api/v1/tools/metered/deployment', { replicas: 1 })).status).toBe(200);
    await waitFor(async () => (await cluster.api('GET', '/api/v1/tools/metered/deployment')).body.running === 1, 'one replica running');
    // The heartbeat after the passes carries them (one per second in tests).
    const after = await waitFor(async () => {
      const n = await passes();
      return n > start ? n : null;
    }, 'passes reported');
    expect(after).toBeGreaterThan(start);
    const text = await (await fetch(`${cluster.url}/metrics`)).text();
    expect(text).toMatch(/^machete_reconcile_pass_duration_seconds_sum \d/m);
    expect(text).toContain('machete_reconcile_errors_total 0');
    expect((await cluster.api('PUT', '/api/v1/tools/metered/deployment', { replicas: 0 })).status).toBe(200);
  });
});
