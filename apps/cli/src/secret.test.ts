import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../../../test/helpers/cluster.ts';
import { machete, tempHome } from '../../../test/helpers/cli.ts';

// `machete secret` in-process against a real control plane (no agent needed).
let cluster: TestCluster;
let env: Record<string, string> = {};
const VALUE = 'cli-secret-5d1e-value';

beforeAll(async () => {
  cluster = new TestCluster({ dockerSocket: '/nonexistent' });
  await cluster.startServer();
  env = { HOME: tempHome(), MACHETE_SERVER: cluster.url, MACHETE_TOKEN: await cluster.token('operator') };
}, 60_000);
afterAll(() => cluster?.close());

describe('machete secret', () => {
  it('sets a value from stdin (one trailing newline dropped), lists metadata only, and removes it', async () => {
    const set = await machete(['secret', 'set', 'cli-key'], env, { stdin: `${VALUE}\n` });
    expect(set, set.stderr).toMatchObject({ code: 0, stdout: expect.stringContaining('version 1') });
    expect(set.stdout + set.stderr).not.toContain(VALUE);
    expect((await machete(['secret', 'set', 'cli-key'], env, { stdin: `${VALUE}\n` })).stdout).toContain('version 1');

    const ls = await machete(['secret', 'ls'], env);
    expect(ls.stdout).toMatch(/cli-key +1 +21 /);
    expect(ls.stdout).not.toContain(VALUE);
    const json = JSON.parse((await machete(['secret', 'ls', '--json'], env)).stdout) as { name: string; sizeBytes: number }[];
    expect(json).toEqual([expect.objectContaining({ name: 'cli-key', sizeBytes: VALUE.length })]);
    expect(JSON.stringify(json)).not.toContain(VALUE);

    const raw = await machete(['secret', 'set', 'cli-key', '--raw', '--json'], env, { stdin: `${VALUE}\n` });
    expect(JSON.parse(raw.stdout)).toMatchObject({ version: 2, sizeBytes: VALUE.length + 1 });

    expect(await machete(['secret', 'rm', 'cli-key'], env)).toMatchObject({ code: 0 });
    expect(JSON.parse((await machete(['secret', 'ls', '--json'], env)).stdout)).toEqual([]);
    expect((await machete(['secret', 'rm', 'cli-key'], env)).code).toBe(1);
  });

  it('refuses a value on the command line or an empty stdin (exit 2), and a viewer (exit 1)', async () => {
    expect((await machete(['secret', 'set', 'x', 'the-value'], env)).code).toBe(2);
    expect((await machete(['secret', 'set', 'x'], env, { stdin: '' })).code).toBe(2);
    const viewer = { ...env, MACHETE_TOKEN: await cluster.token('viewer') };
    const r = await machete(['secret', 'ls'], viewer);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('operator');
  });
});
