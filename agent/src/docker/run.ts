import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type Docker from 'dockerode';
import type { CreatePayload, OutputBuffer, RunRequest, RunResult } from './port.ts';
import { ensureToolNetwork } from './network.ts';
import { prepareCreated } from './prepare.ts';
import { removeSecretsVolume } from './secrets.ts';
import { statusOf } from './engineError.ts';

/** A fresh per-request deadline for short engine calls (never used for attach or wait, which last as long as the tool). */
export type Deadline = (extraMs?: number) => AbortSignal;

/** After a kill, how long the engine gets to report the exit before we stop waiting and force-remove. */
export const KILL_GRACE_MS = 10_000;
/** After the exit, how long the attach stream gets to deliver what the engine still holds. */
const DRAIN_MS = 2_000;
const MAX_REASON = 1024;
const INITIAL_CAPACITY = 64 * 1024;
const REMOVE_RETRY_MS = [0, 250, 1_000];
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
export const BENIGN_STREAM_ERRORS = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_DESTROYED']);

export const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
export const clip = (s: string): string => (s.length > MAX_REASON ? `${s.slice(0, MAX_REASON - 1)}…` : s);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where `buf[0, end)` can be cut without splitting a UTF-8 sequence (bytes that are not UTF-8 are kept as they are). */
export function utf8CutPoint(buf: Uint8Array, end: number): number {
  const floor = Math.max(0, end - 4);
  let i = end - 1;
  while (i >= floor && ((buf[i] ?? 0) & 0xc0) === 0x80) i--;
  if (i < floor) return end;
  const lead = buf[i] ?? 0;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i + need > end ? i : end;
}

/** Keeps the first `cap` bytes of a stream; later bytes are only counted, never held. */
export class CappedOutput {
  private buf: Buffer;
  private kept = 0;
  /** Every byte seen, kept or not. */
  seen = 0;

  constructor(readonly cap: number) {
    this.buf = Buffer.allocUnsafe(Math.max(0, Math.min(cap, INITIAL_CAPACITY)));
  }

  write(chunk: Uint8Array): void {
    this.seen += chunk.length;
    const take = Math.min(this.cap - this.kept, chunk.length);
    if (take <= 0) return;
    if (this.kept + take > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.cap, Math.max(this.kept + take, this.buf.length * 2)));
      this.buf.copy(grown, 0, 0, this.kept);
      this.buf = grown;
    }
    this.buf.set(chunk.subarray(0, take), this.kept);
    this.kept += take;
  }

  get truncated(): boolean {
    return this.seen > this.cap;
  }

  /** Bytes kept so far. */
  get length(): number {
    return this.kept;
  }

  /** A view of kept bytes [from, to): valid for good, since kept bytes are never rewritten. */
  bytes(from: number, to = this.kept): Buffer {
    return this.buf.subarray(Math.max(0, from), Math.min(to, this.kept));
  }

  /** The kept bytes as UTF-8; a cut made by the cap never leaves half a character behind. */
  text(): string {
    const end = this.truncated ? utf8CutPoint(this.buf, this.kept) : this.kept;
    return this.buf.toString('utf8', 0, end);
  }
}

/**
 * Splits Docker's multiplexed attach stream (Tty false): frames of an 8-byte header
 * [stream, 0, 0, 0, size uint32 BE] then `size` bytes; stream 1 is stdout, 2 stderr.
 * Unlike docker-modem's demuxStream it never concatenates buffers: payload slices go
 * straight to their sink, so a flood costs neither memory nor copies.
 */
export function createDemuxer(stdout: (b: Buffer) => void, stderr: (b: Buffer) => void): (chunk: Buffer) => void {
  const header = Buffer.alloc(8);
  let headerFill = 0;
  let remaining = 0;
  let sink: ((b: Buffer) => void) | null = null;
  return (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (remaining === 0) {
        const n = Math.min(8 - headerFill, chunk.length - at);
        chunk.copy(header, headerFill, at, at + n);
        headerFill += n;
        at += n;
        if (headerFill < 8) return;
        headerFill = 0;
        remaining = header.readUInt32BE(4);
        sink = header[0] === 1 ? stdout : header[0] === 2 ? stderr : null;
        continue;
      }
      const n = Math.min(remaining, chunk.length - at);
      sink?.(chunk.subarray(at, at + n));
      at += n;
      remaining -= n;
    }
  };
}

interface Exit {
  code: number;
  error: string | null;
}

/** The two long-lived connections of one run: the hijacked attach stream and the pending wait. */
interface Session {
  exited: Promise<Exit>;
  writeStdin(stdin: string | null): void;
  /** Resolves when the engine has closed the attach stream, or after `ms`. */
  drained(ms: number): Promise<void>;
  streamError(): string | null;
  close(): void;
}

/** Runs `fn(signal)`, aborting the signal if it has not settled within `ms`; the signal is never aborted afterwards. */
export async function withHeaderTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('engine did not answer in time')), ms);
  try {
    return await fn(ac.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** Attach (hijacked, stdin + stdout + stderr) before start, so not a byte of output is missed. */
async function attach(docker: Docker, id: string, out: OutputBuffer, err: OutputBuffer, timeoutMs: number) {
  const socket = (await withHeaderTimeout(timeoutMs, (abortSignal) =>
    docker.getContainer(id).attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true, abortSignal }),
  )) as unknown as Socket;
  let failure: string | null = null;
  const ended = new Promise<void>((resolve) => {
    socket.once('end', resolve);
    socket.once('close', resolve);
  });
  // The tool may exit without reading all its stdin; the engine then closes on unread input (EPIPE,
  // ECONNRESET), after the output, which is still read first. An engine that really fails also fails the wait.
  socket.on('error', (e: NodeJS.ErrnoException) => void (!BENIGN_STREAM_ERRORS.has(e.code ?? '') && (failure ??= e.code ?? e.message)));
  socket.on('data', createDemuxer((b) => out.write(b), (b) => err.write(b)));
  return { socket, ended, failure: () => failure };
}

/**
 * POST /wait with condition next-exit, opened before start. The engine registers the waiter
 * before it flushes the response headers, so once they arrive no exit can be missed;
 * dockerode's wait() resolves only with the body, hence the raw dial.
 */
function openWait(docker: Docker, id: string, timeoutMs: number): Promise<{ exited: Promise<Exit>; cancel(): void }> {
  return withHeaderTimeout(
    timeoutMs,
    (abortSignal) =>
      new Promise((resolve, reject) => {
        const opts = {
          path: `/containers/${id}/wait?`,
          method: 'POST',
          isStream: true,
          abortSignal,
          statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
          options: { _query: { condition: 'next-exit' }, _body: {} },
        };
        (docker.modem as { dial(o: unknown, cb: (e: Error | null, res: IncomingMessage) => void): void }).dial(opts, (e, res) => {
          if (e) return reject(e);
          const exited = readExit(res);
          exited.catch(() => undefined); // cancelled waits are not errors anyone awaits
          resolve({ exited, cancel: () => res.destroy() });
        });
      }),
  );
}

function readExit(res: IncomingMessage): Promise<Exit> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      if (body.length < 64 * 1024) body += s;
    });
    res.on('end', () => {
      try {
        const j = JSON.parse(body) as { StatusCode?: unknown; Error?: { Message?: unknown } | null };
        if (typeof j.StatusCode !== 'number') throw new Error('no StatusCode');
        const error = typeof j.Error?.Message === 'string' && j.Error.Message ? j.Error.Message : null;
        resolve({ code: j.StatusCode, error });
      } catch {
        reject(new Error('unreadable wait answer from the engine'));
      }
    });
    res.on('error', reject);
    res.on('close', () => reject(new Error('wait connection closed before the exit')));
  });
}

async function openSession(docker: Docker, id: string, out: OutputBuffer, err: OutputBuffer, timeoutMs: number): Promise<Session> {
  // Independent requests: opened side by side, and neither outlives the other's failure.
  const [attached, waiting] = await Promise.allSettled([attach(docker, id, out, err, timeoutMs), openWait(docker, id, timeoutMs)]);
  if (attached.status === 'rejected' || waiting.status === 'rejected') {
    if (attached.status === 'fulfilled') attached.value.socket.destroy();
    if (waiting.status === 'fulfilled') waiting.value.cancel();
    throw attached.status === 'rejected' ? attached.reason : (waiting as PromiseRejectedResult).reason;
  }
  const a = attached.value;
  const waiter = waiting.value;
  return {
    exited: waiter.exited,
    writeStdin(stdin) {
      if (!a.socket.writable) return; // the tool already ran and the engine closed the stream
      if (stdin) a.socket.write(stdin, 'utf8');
      a.socket.end(); // half-close: with StdinOnce the engine closes the tool's stdin, output keeps flowing
    },
    drained: (ms) => Promise.race([a.ended, sleep(ms)]),
    streamError: a.failure,
    close() {
      waiter.cancel();
      a.socket.destroy();
    },
  };
}

/** Resolves with why the run must be stopped early: the caller aborted, or the timeout elapsed. */
export function stopCondition(signal: AbortSignal, timeoutMs: number): { stopped: Promise<'timeout' | 'cancelled'>; dispose(): void } {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<'timeout' | 'cancelled'>((resolve) => {
    onAbort = () => resolve('cancelled');
    if (signal.aborted) return resolve('cancelled');
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  return {
    stopped,
    dispose() {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    },
  };
}

export type Outcome = Pick<RunResult, 'status' | 'exitCode' | 'reason'>;

export async function kill(docker: Docker, id: string, deadline: Deadline): Promise<void> {
  try {
    await docker.getContainer(id).kill({ signal: 'SIGKILL', abortSignal: deadline() });
  } catch (err) {
    const s = statusOf(err);
    if (s !== 404 && s !== 409 && s !== 304) throw err; // not running (any more): nothing to kill
  }
}

async function exitOutcome(docker: Docker, id: string, exit: Exit, memoryBytes: unknown, deadline: Deadline): Promise<Outcome> {
  if (exit.error) return { status: 'failed', exitCode: exit.code, reason: `engine error: ${exit.error}` };
  if (exit.code === 0) return { status: 'succeeded', exitCode: 0, reason: null };
  // Only a failed run pays for the inspect that tells an OOM kill from the tool's own exit code.
  const info = await docker.getContainer(id).inspect({ abortSignal: deadline() } as Docker.ContainerInspectOptions);
  if (info.State?.OOMKilled) {
    const mib = typeof memoryBytes === 'number' ? ` (${Math.round(memoryBytes / (1024 * 1024))} MiB)` : '';
    return { status: 'failed', exitCode: exit.code, reason: `out of memory: killed at the tool's memory limit${mib}` };
  }
  return { status: 'failed', exitCode: exit.code, reason: null };
}

/** Start, feed stdin, then wait for the exit, the timeout or the caller's abort, whichever comes first. */
async function execute(docker: Docker, id: string, s: Session, req: RunRequest, deadline: Deadline): Promise<Outcome> {
  await docker.getContainer(id).start({ abortSignal: deadline() });
  // The clock starts once the tool runs: the engine's start latency does not eat into its timeout.
  // An abort that came during start is seen at once.
  const stop = stopCondition(req.signal, req.timeoutMs);
  try {
    s.writeStdin(req.stdin);
    const first = await Promise.race([s.exited, stop.stopped]);
    if (typeof first === 'object') {
      await s.drained(DRAIN_MS);
      return await exitOutcome(docker, id, first, req.payload.body.HostConfig.Memory, deadline);
    }
    await kill(docker, id, deadline);
    const confirmed = await Promise.race([s.exited.then(() => true), sleep(KILL_GRACE_MS).then(() => false)]).catch(() => false);
    if (confirmed) await s.drained(DRAIN_MS);
    // The exit code after a kill is the kill's, not the tool's.
    return { status: first, exitCode: null, reason: confirmed ? null : 'engine did not confirm the kill' };
  } finally {
    stop.dispose();
  }
}

/** Creates the container (its tool network held meanwhile) and fills what must exist before start; answers its id. */
export async function createContainer(docker: Docker, payload: CreatePayload, deadline: Deadline): Promise<string> {
  // `_query`/`_body` keep the body (env values included) out of the URL.
  const opts = { _query: { name: payload.name }, _body: payload.body, abortSignal: deadline() };
  const release = await ensureToolNetwork(docker, payload, deadline);
  let c: Docker.Container;
  try {
    c = await docker.createContainer(opts as unknown as Docker.ContainerCreateOptions);
  } finally {
    release();
  }
  if (!CONTAINER_ID_RE.test(c.id)) throw new Error('engine returned an invalid container id');
  await prepareCreated(docker, c.id, payload, deadline);
  return c.id;
}

async function removeContainer(docker: Docker, id: string, deadline: Deadline): Promise<void> {
  let last: unknown;
  for (const wait of REMOVE_RETRY_MS) {
    if (wait) await sleep(wait);
    try {
      await docker.getContainer(id).remove({ force: true, abortSignal: deadline() });
      return;
    } catch (err) {
      if (statusOf(err) === 404) return;
      last = err;
    }
  }
  throw new Error(`invocation container ${id.slice(0, 12)} could not be removed: ${message(last)}`);
}

/**
 * DockerPort.run on the Engine API: create → attach + wait (before start) → start → stdin →
 * exit | timeout | abort → output → force-remove, the removal in every case. Engine errors
 * become a `failed` result; only a container that cannot be removed makes it reject.
 */
export async function runContainer(docker: Docker, req: RunRequest, deadline: Deadline, requestTimeoutMs: number): Promise<RunResult> {
  const t0 = performance.now();
  // The caller's buffers when it wants to read output live (logs of a running invocation).
  const out: OutputBuffer = req.output?.stdout ?? new CappedOutput(req.maxOutputBytes);
  const err: OutputBuffer = req.output?.stderr ?? new CappedOutput(req.maxOutputBytes);
  let id: string | null = null;
  let session: Session | undefined;
  const result = (o: Outcome): RunResult => {
    const broken = session?.streamError();
    const reason = broken ? [o.reason, `output may be incomplete (${broken})`].filter(Boolean).join('; ') : o.reason;
    return {
      ...o,
      reason: reason === null ? null : clip(reason),
      stdout: out.text(),
      stderr: err.text(),
      truncated: out.truncated || err.truncated,
      durationMs: Math.max(0, Math.round(performance.now() - t0)),
      containerId: id,
    };
  };
  const cancelled: Outcome = { status: 'cancelled', exitCode: null, reason: null };
  if (req.signal.aborted) return result(cancelled);
  // The result is final once the tool has exited and its output is drained: the caller may have it
  // before the removal below (which still happens, and which run() still waits for).
  const early = (r: RunResult): RunResult => {
    try {
      req.onResult?.(r);
    } catch {
      // the caller's problem; the run and the removal go on
    }
    return r;
  };
  try {
    id = await createContainer(docker, req.payload, deadline);
    session = await openSession(docker, id, out, err, requestTimeoutMs);
    if (req.signal.aborted) return early(result(cancelled));
    return early(result(await execute(docker, id, session, req, deadline)));
  } catch (e) {
    return early(result(req.signal.aborted ? cancelled : { status: 'failed', exitCode: null, reason: `engine error: ${message(e)}` }));
  } finally {
    session?.close();
    if (id) await removeContainer(docker, id, deadline);
    // A leftover volume is swept later (sweepSecrets); the result must not be lost over it.
    if (req.payload.secrets) await removeSecretsVolume(docker, req.payload.secrets.volume, deadline).catch(() => {});
  }
}
