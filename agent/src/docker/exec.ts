import type { Socket } from 'node:net';
import type Docker from 'dockerode';
import type { ExecRequest, OutputBuffer, RunResult, SandboxInfo } from './port.ts';
import { BENIGN_STREAM_ERRORS, CappedOutput, KILL_GRACE_MS, clip, createDemuxer, kill, message, sleep, stopCondition, withHeaderTimeout } from './run.ts';
import { statusOf } from './engineError.ts';
import type { Deadline, Outcome } from './run.ts';

/** The engine may report an exec as running for a moment after its stream closed. */
const EXIT_POLL_MS = 2;
const EXIT_POLL_TRIES = 1_000;
/** Exec start answers that prove the process was never started: the sandbox is gone or stopped. */
const NOT_STARTED = new Set([404, 409, 500]);

/** Container state and its image's ENTRYPOINT/CMD, read from the image the container was really created from. */
export async function sandboxInfo(docker: Docker, id: string, deadline: Deadline): Promise<SandboxInfo> {
  const c = await docker.getContainer(id).inspect({ abortSignal: deadline() } as Docker.ContainerInspectOptions);
  // By image id, not by reference: the tag may point elsewhere since the sandbox was created.
  const img = await docker.getImage(c.Image).inspect();
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const running = c.State?.Running === true;
  return { running, exitCode: !running && typeof c.State?.ExitCode === 'number' ? c.State.ExitCode : null, entrypoint: list(img.Config?.Entrypoint), cmd: list(img.Config?.Cmd) };
}

async function exitCodeOf(exec: Docker.Exec, deadline: Deadline): Promise<number | null> {
  for (let i = 0; i < EXIT_POLL_TRIES; i++) {
    const info = await exec.inspect({ abortSignal: deadline() } as object);
    if (!info.Running && typeof info.ExitCode === 'number') return info.ExitCode;
    await sleep(EXIT_POLL_MS);
  }
  return null;
}

/** The output stream of an exec: hijacked (also carrying stdin) or a plain response body. */
type ExecStream = Pick<Socket, 'on' | 'once' | 'destroy'> & { write?: Socket['write']; end?: Socket['end'] };

/**
 * Opens the exec stream; null when the engine says the process could not start. Without stdin
 * there is nothing to hijack the connection for: the plain response is ~15 ms faster, and the
 * process reads EOF at once (exec without AttachStdin gets /dev/null), as a cold run's closed stdin.
 */
async function startExec(docker: Docker, req: ExecRequest, deadline: Deadline, requestTimeoutMs: number): Promise<{ exec: Docker.Exec; stream: ExecStream } | null> {
  const stdin = req.stdin !== null;
  let exec: Docker.Exec;
  try {
    exec = await docker.getContainer(req.containerId).exec({
      Cmd: req.argv,
      User: req.user,
      AttachStdin: stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      Privileged: false,
      abortSignal: deadline(),
    } as Docker.ExecCreateOptions);
  } catch {
    return null; // no exec exists: nothing can have run
  }
  try {
    const stream = (await withHeaderTimeout(requestTimeoutMs, (abortSignal) =>
      exec.start({ hijack: stdin, stdin, Detach: false, Tty: false, abortSignal } as Docker.ExecStartOptions),
    )) as unknown as ExecStream;
    return { exec, stream };
  } catch (err) {
    const s = statusOf(err);
    if (s !== undefined && NOT_STARTED.has(s)) return null;
    throw err; // the process may have started: not safe to run it again cold
  }
}

/**
 * DockerPort.exec on the Engine API: exec create (the tool's argv and user) → hijacked start →
 * stdin, half-close → stream end | timeout | abort → exit code from exec inspect. The sandbox keeps
 * the container's locked-down settings (caps, no-new-privileges, read-only rootfs, limits, network);
 * exec adds nothing but the argv and the user. Timeout and abort kill the whole sandbox.
 */
export async function execInSandbox(docker: Docker, req: ExecRequest, deadline: Deadline, requestTimeoutMs: number): Promise<RunResult | null> {
  const t0 = performance.now();
  const out: OutputBuffer = req.output?.stdout ?? new CappedOutput(req.maxOutputBytes);
  const err: OutputBuffer = req.output?.stderr ?? new CappedOutput(req.maxOutputBytes);
  let failure: string | null = null;
  const result = (o: Outcome): RunResult => {
    const reason = failure ? [o.reason, `output may be incomplete (${failure})`].filter(Boolean).join('; ') : o.reason;
    return {
      ...o,
      reason: reason === null ? null : clip(reason),
      stdout: out.text(),
      stderr: err.text(),
      truncated: out.truncated || err.truncated,
      durationMs: Math.max(0, Math.round(performance.now() - t0)),
      containerId: req.containerId,
    };
  };
  if (req.signal.aborted) return result({ status: 'cancelled', exitCode: null, reason: null });
  let started: Awaited<ReturnType<typeof startExec>>;
  try {
    started = await startExec(docker, req, deadline, requestTimeoutMs);
  } catch (e) {
    return result({ status: 'failed', exitCode: null, reason: `engine error: ${message(e)}` });
  }
  if (!started) return null;
  const { exec, stream: socket } = started;
  const ended = new Promise<'ended'>((resolve) => {
    socket.once('end', () => resolve('ended'));
    socket.once('close', () => resolve('ended'));
  });
  socket.on('error', (e: NodeJS.ErrnoException) => void (!BENIGN_STREAM_ERRORS.has(e.code ?? '') && (failure ??= e.code ?? e.message)));
  socket.on('data', createDemuxer((b) => out.write(b), (b) => err.write(b)));
  const stop = stopCondition(req.signal, req.timeoutMs);
  try {
    if (req.stdin) socket.write?.(req.stdin, 'utf8');
    socket.end?.(); // half-close: the engine closes the process's stdin, output keeps flowing
    const first = await Promise.race([ended, stop.stopped]);
    if (first === 'ended') {
      const code = await exitCodeOf(exec, deadline);
      if (code === null) return result({ status: 'failed', exitCode: null, reason: 'engine did not report the exit code' });
      return result({ status: code === 0 ? 'succeeded' : 'failed', exitCode: code, reason: null });
    }
    await kill(docker, req.containerId, deadline);
    const confirmed = await Promise.race([ended.then(() => true), sleep(KILL_GRACE_MS).then(() => false)]);
    return result({ status: first, exitCode: null, reason: confirmed ? null : 'engine did not confirm the kill' });
  } catch (e) {
    return result({ status: req.signal.aborted ? 'cancelled' : 'failed', exitCode: null, reason: req.signal.aborted ? null : `engine error: ${message(e)}` });
  } finally {
    stop.dispose();
    socket.destroy();
  }
}
