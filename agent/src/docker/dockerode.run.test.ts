import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { ToolSpecInput } from '../../../protocol/src/index.ts';
import { createDockerodePort } from './dockerode.ts';
import { buildCreatePayload } from './payload.ts';
import type { DockerPort, RunRequest, RunResult } from './port.ts';
import { CappedOutput, createDemuxer, utf8CutPoint } from './run.ts';

const MIB = 1024 * 1024;

describe('run helpers', () => {
  it('cuts on a UTF-8 boundary, never inside a character', () => {
    const b = Buffer.from('aé€😀', 'utf8'); // 1 + 2 + 3 + 4 bytes
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((end) => utf8CutPoint(b, end))).toEqual([1, 1, 3, 3, 3, 6, 6, 6, 6, 10]);
    expect(utf8CutPoint(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80]), 5)).toBe(5); // not UTF-8: keep the bytes
    expect(utf8CutPoint(Buffer.alloc(0), 0)).toBe(0);
  });

  it('keeps the first cap bytes, counts the rest and marks the output truncated', () => {
    const o = new CappedOutput(5);
    o.write(Buffer.from('abc'));
    o.write(Buffer.from('déf')); // 'd' fits, then half of 'é' would: dropped whole
    expect(o.truncated).toBe(true);
    expect(o.seen).toBe(7);
    expect(o.text()).toBe('abcd');
    const exact = new CappedOutput(3);
    exact.write(Buffer.from('abc'));
    expect([exact.truncated, exact.text()]).toEqual([false, 'abc']);
  });

  it('demultiplexes frames split at every possible byte boundary', () => {
    const frame = (type: number, s: string) => {
      const p = Buffer.from(s);
      const h = Buffer.alloc(8);
      h[0] = type;
      h.writeUInt32BE(p.length, 4);
      return Buffer.concat([h, p]);
    };
    const stream = Buffer.concat([frame(1, 'out1 '), frame(2, 'err1'), frame(1, ''), frame(0, 'ignored'), frame(1, 'out2')]);
    for (const size of [1, 3, 7, 8, 9, stream.length]) {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const feed = createDemuxer((b) => out.push(Buffer.from(b)), (b) => err.push(Buffer.from(b)));
      for (let i = 0; i < stream.length; i += size) feed(stream.subarray(i, i + size));
      expect([Buffer.concat(out).toString(), Buffer.concat(err).toString()]).toEqual(['out1 out2', 'err1']);
    }
  });
});

describe('DockerPort.run against a real engine', () => {
  const socketPath = inject('dockerSocket');
  const image = inject('testImage');
  const hostId = `run-${randomUUID().slice(0, 12)}`;
  const docker = new Docker({ socketPath });
  const port: DockerPort = createDockerodePort({ socketPath });

  const leftovers = async () =>
    docker.listContainers({ all: true, filters: { label: [`machete.host=${hostId}`, 'machete.kind=invocation'] } });

  afterEach(async () => {
    // Every run removes its container, whatever happened.
    expect(await leftovers()).toEqual([]);
  });

  function request(spec: Omit<ToolSpecInput, 'image'>, o: { args?: string[]; stdin?: string | null; timeoutMs?: number; max?: number; signal?: AbortSignal; p?: DockerPort } = {}) {
    const id = `i${randomUUID().slice(0, 8)}`;
    const payload = buildCreatePayload(
      { id, tool: 'runner', version: 1, kind: 'invocation', revision: 0, desired: 'running', spec: ToolSpecSchema.parse({ image, ...spec }) },
      { hostId, allowedMounts: [], engineEndpoint: socketPath, ...(o.args ? { extraArgs: o.args } : {}) },
    );
    const req: RunRequest = {
      payload,
      stdin: o.stdin ?? null,
      timeoutMs: o.timeoutMs ?? 20_000,
      maxOutputBytes: o.max ?? MIB,
      signal: o.signal ?? new AbortController().signal,
    };
    return (o.p ?? port).run(req);
  }

  it('returns exit code 0, stdout and the container id of a successful run', async () => {
    const r = await request({ command: ['echo', 'hello'] });
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'hello\n', stderr: '', truncated: false, reason: null });
    expect(r.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(r.durationMs).toBeGreaterThan(0);
  });

  it('hands the result over once, before the removal it still waits for', async () => {
    const payload = buildCreatePayload(
      { id: `i${randomUUID().slice(0, 8)}`, tool: 'runner', version: 1, kind: 'invocation', revision: 0, desired: 'running', spec: ToolSpecSchema.parse({ image, command: ['echo', 'early'] }) },
      { hostId, allowedMounts: [], engineEndpoint: socketPath },
    );
    const early: { r: RunResult; runSettled: boolean }[] = [];
    let settled = false;
    const onResult = (r: RunResult) => early.push({ r, runSettled: settled });
    const run = port.run({ payload, stdin: null, timeoutMs: 20_000, maxOutputBytes: MIB, signal: new AbortController().signal, onResult });
    void run.then(() => (settled = true));
    const r = await run;
    expect(early).toEqual([{ r, runSettled: false }]);
    expect(r).toMatchObject({ status: 'succeeded', stdout: 'early\n' });
    expect(await docker.listContainers({ all: true, filters: { id: [r.containerId!] } })).toEqual([]);
  });

  it('returns a non-zero exit code as failed, with stdout and stderr kept apart', async () => {
    const r = await request({ command: ['sh', '-c', 'echo out; echo err >&2; echo out2; exit 3'] });
    expect(r).toMatchObject({ status: 'failed', exitCode: 3, stdout: 'out\nout2\n', stderr: 'err\n', truncated: false, reason: null });
  });

  it('writes stdin to the process and closes it', async () => {
    const stdin = 'line 1\nligne 2 é ✓\n\0tail without newline';
    expect(await request({ command: ['cat'] }, { stdin })).toMatchObject({ status: 'succeeded', stdout: stdin });
  });

  it('closes stdin at once when there is none', async () => {
    expect(await request({ command: ['cat'] }, { stdin: null, timeoutMs: 10_000 })).toMatchObject({ status: 'succeeded', stdout: '' });
  });

  it('streams a large stdin through and back out', async () => {
    const stdin = 'abcdefghij'.repeat(200_000); // 2 MB
    const r = await request({ command: ['cat'] }, { stdin, max: 4 * MIB });
    expect(r.status).toBe('succeeded');
    expect(r.stdout.length).toBe(stdin.length);
    expect(r.stdout === stdin).toBe(true);
  });

  it('does not hang or lose output when the tool ignores its stdin', async () => {
    const r = await request({ command: ['echo', 'ignored'] }, { stdin: 'x'.repeat(MIB) });
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, stdout: 'ignored\n', reason: null });
  });

  it('passes args verbatim as argv entries: no shell ever sees them', async () => {
    const args = ['a b', `it's "quoted"`, '$HOME', '`id`', '$(id)', 'x; echo pwned', 'multi\nline', '*', ''];
    const r = await request({ command: ['printf', '%s|'] }, { args });
    expect(r).toMatchObject({ status: 'succeeded', stdout: `${args.join('|')}|` });
  });

  it('runs args as the whole command when the spec has none', async () => {
    expect(await request({}, { args: ['echo', 'from', 'args'] })).toMatchObject({ status: 'succeeded', stdout: 'from args\n' });
  });

  it('kills a run that outlives its timeout and says timeout', async () => {
    const t0 = performance.now();
    const r = await request({ command: ['sleep', '30'] }, { timeoutMs: 1_000 });
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ status: 'timeout', exitCode: null, reason: null });
    expect(ms).toBeLessThan(2_500);
  });

  it('keeps the output written before a timeout', async () => {
    const r = await request({ command: ['sh', '-c', 'echo started; echo warn >&2; sleep 30'] }, { timeoutMs: 1_000 });
    expect(r).toMatchObject({ status: 'timeout', stdout: 'started\n', stderr: 'warn\n' });
  });

  it('kills a run when its signal aborts and says cancelled', async () => {
    const ac = new AbortController();
    const running = request({ command: ['sleep', '30'] }, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 600));
    const t0 = performance.now();
    ac.abort();
    const r = await running;
    expect(r).toMatchObject({ status: 'cancelled', exitCode: null });
    expect(performance.now() - t0).toBeLessThan(1_500);
  });

  it.each([0, 20, 60, 150, 300])('cancels %i ms into the run (create, attach, start…) and still removes the container', async (ms) => {
    const ac = new AbortController();
    const running = request({ command: ['sleep', '30'] }, { signal: ac.signal });
    setTimeout(() => ac.abort(), ms);
    expect(await running).toMatchObject({ status: 'cancelled', exitCode: null });
  });

  it('does not touch the engine for a signal aborted before the run', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await request({ command: ['echo', 'never'] }, { signal: ac.signal })).toMatchObject({ status: 'cancelled', containerId: null, stdout: '' });
  });

  it('reads and discards a 1 GB flood past the cap: truncated, bounded memory', async () => {
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const t0 = performance.now();
      const r = await request({ command: ['head', '-c', '1000000000', '/dev/zero'], resources: { cpus: 2 } }, { timeoutMs: 120_000 });
      console.info(`1 GB flood read and discarded in ${Math.round(performance.now() - t0)} ms, RSS growth peak ${((peak - rss0) / MIB).toFixed(1)} MiB`);
      expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, truncated: true, stderr: '' });
      expect(r.stdout.length).toBe(MIB);
      expect(peak - rss0).toBeLessThan(200 * MIB);
    } finally {
      clearInterval(sampler);
    }
  }, 150_000);

  it('reads a line flood fast: no engine logger throttles the container', async () => {
    // With the json-file driver the engine logs line by line in lockstep with the attach stream (~1 MB/s for `yes`).
    const t0 = performance.now();
    const r = await request({ command: ['sh', '-c', 'yes | head -c 100000000'], resources: { cpus: 2 } }, { timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    console.info(`100 MB line flood (yes) in ${Math.round(ms)} ms`);
    expect(r).toMatchObject({ status: 'succeeded', truncated: true });
    expect(r.stdout.length).toBe(MIB);
    expect(ms).toBeLessThan(20_000);
  }, 90_000);

  it('caps stdout and stderr separately', async () => {
    const r = await request({ command: ['sh', '-c', 'yes out | head -c 300000; yes err | head -c 300000 >&2; echo done >&2'] }, { max: 100_000 });
    expect(r).toMatchObject({ status: 'succeeded', truncated: true });
    expect([r.stdout.length, r.stderr.length]).toEqual([100_000, 100_000]);
    expect(r.stdout.startsWith('out\nout\n')).toBe(true);
    expect(r.stderr.startsWith('err\nerr\n')).toBe(true);
  });

  it('cuts truncated output on a UTF-8 boundary', async () => {
    const r = await request({ command: ['printf', 'aé'] }, { max: 2 });
    expect(r).toMatchObject({ status: 'succeeded', stdout: 'a', truncated: true });
  });

  it('reports an out-of-memory kill as failed with a reason naming memory', async () => {
    // busybox sh holds a command substitution in memory: 64 MB of it in an 8 MiB container.
    const r = await request({ command: ['sh', '-c', 'x=$(yes | head -c 64000000); echo survived'], resources: { memoryMb: 8 } }, { timeoutMs: 60_000 });
    expect(r).toMatchObject({ status: 'failed', stdout: '' });
    expect(r.exitCode).not.toBe(0);
    expect(r.reason).toMatch(/memory/);
  }, 90_000);

  it('reports an engine error (missing image) as failed and leaves nothing behind', async () => {
    const id = `i${randomUUID().slice(0, 8)}`;
    const spec = ToolSpecSchema.parse({ image: 'machete/not-here:nope', command: ['true'] });
    const payload = buildCreatePayload({ id, tool: 'runner', version: 1, kind: 'invocation', revision: 0, desired: 'running', spec }, { hostId, allowedMounts: [], engineEndpoint: socketPath });
    const r = await port.run({ payload, stdin: null, timeoutMs: 5_000, maxOutputBytes: MIB, signal: new AbortController().signal });
    expect(r).toMatchObject({ status: 'failed', exitCode: null, containerId: null });
    expect(r.reason).toMatch(/^engine error: /);
  });

  it('reports a missing executable as a failed exit (the init reports it)', async () => {
    const r = await request({ command: ['no-such-binary'] });
    expect(r.status).toBe('failed');
    expect(r.exitCode).not.toBe(0);
  });

  it('never lets the per-request engine timeout cut a long run', async () => {
    const short = createDockerodePort({ socketPath, requestTimeoutMs: 1_000 });
    const r = await request({ command: ['sh', '-c', 'sleep 2; echo late'] }, { p: short, timeoutMs: 10_000 });
    expect(r).toMatchObject({ status: 'succeeded', stdout: 'late\n' });
  });

  it('runs several invocations at once without mixing their outputs', async () => {
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => request({ command: ['sh', '-c', `echo out-${i}; echo err-${i} >&2; exit ${i}`] })));
    rs.forEach((r, i) => expect(r).toMatchObject({ exitCode: i, stdout: `out-${i}\n`, stderr: `err-${i}\n` }));
  });
});
