import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDockerodePort } from './dockerode.ts';
import { logsQuery } from './logs.ts';
import type { DockerPort, LogHandle } from './port.ts';

// DockerPort.logs on the real engine: demultiplexed, bounded by pause, closed by close().
let docker: Docker;
let port: DockerPort;
const made: string[] = [];

async function container(script: string): Promise<string> {
  const c = await docker.createContainer({
    name: `machete-logs-test-${randomUUID().slice(0, 8)}`,
    Image: inject('testImage'),
    Cmd: ['sh', '-c', script],
    User: '65534:65534',
    HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'json-file', Config: {} } },
  });
  made.push(c.id);
  await c.start();
  return c.id;
}

function read(id: string, opts: { follow: boolean; tail?: number }) {
  const out = { stdout: '', stderr: '', bytes: 0, ended: false, err: null as Error | null };
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  const handle: LogHandle = port.logs(id, { follow: opts.follow, tail: opts.tail ?? null, since: null }, {
    data: (stream, chunk) => {
      out[stream] += chunk.toString('utf8');
      out.bytes += chunk.length;
    },
    end: (err) => {
      out.ended = true;
      out.err = err;
      resolveEnd();
    },
  });
  return { out, handle, ended };
}

const until = async (fn: () => boolean, ms = 10_000) => {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};

beforeAll(() => {
  docker = new Docker({ socketPath: inject('dockerSocket') });
  port = createDockerodePort({ socketPath: inject('dockerSocket') });
});
afterAll(async () => {
  await Promise.all(made.map((id) => docker.getContainer(id).remove({ force: true }).catch(() => {})));
});

describe('dockerode logs', () => {
  it('builds only the query values that are set', () => {
    expect(logsQuery({ follow: false, tail: null, since: null })).toEqual({ stdout: 1, stderr: 1, follow: 0 });
    expect(logsQuery({ follow: true, tail: 5, since: 100 })).toEqual({ stdout: 1, stderr: 1, follow: 1, tail: 5, since: 100 });
  });

  it('reads stdout and stderr apart, honours tail, and ends after the backlog', async () => {
    const id = await container('echo one; echo two >&2; sleep 0.3; echo three; sleep 30');
    await new Promise((r) => setTimeout(r, 500));
    const all = read(id, { follow: false });
    await all.ended;
    expect(all.out).toMatchObject({ stdout: 'one\nthree\n', stderr: 'two\n', err: null });
    const tail = read(id, { follow: false, tail: 1 });
    await tail.ended;
    expect(tail.out.stdout + tail.out.stderr).toBe('three\n');
  });

  it('follows until the container stops; close() ends a follow at once', async () => {
    const id = await container('i=0; while [ $i -lt 4 ]; do i=$((i+1)); echo n$i; sleep 0.3; done');
    const f = read(id, { follow: true });
    await f.ended;
    expect(f.out.stdout).toBe('n1\nn2\nn3\nn4\n');
    expect(f.out.err).toBeNull();
    const id2 = await container('while :; do echo x; sleep 0.1; done');
    const g = read(id2, { follow: true });
    await until(() => g.out.stdout.length > 0);
    g.handle.close();
    await g.ended;
    const seen = g.out.bytes;
    await new Promise((r) => setTimeout(r, 400));
    expect(g.out.bytes).toBe(seen);
  });

  it('pause stops the flow and resume restarts it; a missing container ends with an error', async () => {
    const id = await container('yes 0123456789abcdefghij | head -c 3990000; sleep 30');
    await new Promise((r) => setTimeout(r, 1500));
    const r = read(id, { follow: false });
    await until(() => r.out.bytes > 0);
    r.handle.pause();
    await new Promise((res) => setTimeout(res, 300));
    const paused = r.out.bytes;
    await new Promise((res) => setTimeout(res, 500));
    expect(r.out.bytes).toBe(paused);
    expect(r.out.ended).toBe(false);
    r.handle.resume();
    await r.ended;
    expect(r.out.bytes).toBe(3_990_000); // whole lines: the engine holds back a partial last line
    const gone = read('0000000000000000000000000000000000000000000000000000000000000000', { follow: false });
    await gone.ended;
    expect(gone.out.err?.message).toMatch(/no such container/i);
  });
});
