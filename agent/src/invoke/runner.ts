import { MAX_FRAME_BYTES } from '../../../protocol/src/index.ts';
import type { InvocationRequest, InvocationResult } from '../../../protocol/src/index.ts';
import type { CreatePayload, DockerPort, RunResult } from '../docker/port.ts';
import { LiveOutput } from './live.ts';
import { execArgv, type WarmSandbox } from './warm.ts';

/** How long an image found on the engine is assumed to still be there. */
const IMAGE_CHECK_TTL_MS = 30_000;

/** pino-compatible (fields first, then message). */
export interface RunnerLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export interface InvocationRunnerDeps {
  port: DockerPort;
  hostId: string;
  /** Request → create payload (buildCreatePayload with kind 'invocation' and the args). A throw is a policy refusal. */
  build: (req: InvocationRequest) => CreatePayload;
  /** Called exactly once per accepted id (and once for each refused one). Must not throw; a throw is logged. */
  onResult: (r: InvocationResult) => void;
  log?: RunnerLog;
  /** Invocations in flight at once; beyond it a request fails at once with `agent busy` (default 16). */
  maxConcurrent?: number;
  /** The warm pool (warm.ts): an invocation runs in a free warm sandbox when there is one, else cold. */
  warm?: { take(req: InvocationRequest): WarmSandbox | null; discard(s: WarmSandbox, dead: boolean): Promise<void> };
}

export interface InvocationRunner {
  /** Removes every leftover invocation container of this host (a previous agent's), reporting each as failed. */
  start(): Promise<void>;
  /** Fire-and-forget: the outcome arrives through onResult. */
  run(req: InvocationRequest): void;
  /** Kills a running invocation; its result says `cancelled`. Unknown or finished ids are ignored. */
  cancel(id: string): void;
  active(): number;
  /** Resolves once nothing runs: results delivered early wait here for their container's removal. */
  whenIdle(): Promise<void>;
  /** A running invocation's output as it is captured (live logs); undefined once it has finished. */
  output(id: string): LiveOutput | undefined;
  /** Cancels everything in flight and resolves once every result has been delivered. */
  stop(): Promise<void>;
}

const MAX_REASON = 1024;
/** Finished ids remembered so a repeated request never runs a tool twice (side effects). */
const RECENT_IDS = 1_000;
const SWEEP_RETRY_MIN_MS = 1_000;
const SWEEP_RETRY_MAX_MS = 30_000;
/** Room left in a frame for everything but stdout and stderr. */
const FRAME_SLACK_BYTES = 8 * 1024;

const noopLog: RunnerLog = { info() {}, warn() {}, error() {} };
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const clip = (s: string): string => (s.length > MAX_REASON ? `${s.slice(0, MAX_REASON - 1)}…` : s);
/** PolicyRefusal carries a `reason` safe to report; duck-typed like the reconcile loop does. */
const refusalOf = (err: unknown): string => {
  const reason: unknown = (err as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' ? reason : message(err);
};

/** Cuts a JS string to at most `n` code units without splitting a surrogate pair. */
function cutString(s: string, n: number): string {
  if (s.length <= n) return s;
  const end = n > 0 && /[\uD800-\uDBFF]/.test(s[n - 1] ?? '') ? n - 1 : n;
  return s.slice(0, end);
}

/**
 * Shrinks stdout/stderr until the `invocationResult` frame fits in MAX_FRAME_BYTES. Needed
 * because JSON escaping can inflate output up to 6× (a NUL byte becomes `\u0000`), so even
 * a 1 MiB cap can make an oversized frame, which the server would answer by closing the socket.
 */
export function fitResult(r: InvocationResult, maxFrameBytes = MAX_FRAME_BYTES): InvocationResult {
  const budget = maxFrameBytes - FRAME_SLACK_BYTES;
  let out = r;
  for (let i = 0; i < 64; i++) {
    const size = Buffer.byteLength(JSON.stringify(out.stdout)) + Buffer.byteLength(JSON.stringify(out.stderr));
    if (size <= budget) return out;
    const ratio = Math.max(0, Math.min(0.9, (budget / size) * 0.95));
    const longer = out.stdout.length >= out.stderr.length ? 'stdout' : 'stderr';
    out = { ...out, [longer]: cutString(out[longer], Math.floor(out[longer].length * ratio)), truncated: true };
  }
  return { ...out, stdout: '', stderr: '', truncated: true };
}

function failedResult(id: string, reason: string, t0: number): InvocationResult {
  return {
    id,
    status: 'failed',
    exitCode: null,
    stdout: '',
    stderr: '',
    truncated: false,
    durationMs: Math.max(0, Math.round(performance.now() - t0)),
    containerId: null,
    reason: clip(reason),
  };
}

/** A port's RunResult as a frame-valid InvocationResult. */
function toResult(id: string, r: RunResult): InvocationResult {
  return fitResult({
    id,
    status: r.status,
    exitCode: Number.isInteger(r.exitCode) ? r.exitCode : null,
    stdout: r.stdout,
    stderr: r.stderr,
    truncated: r.truncated,
    durationMs: Math.max(0, Math.round(r.durationMs)),
    containerId: r.containerId && r.containerId.length <= 128 ? r.containerId : null,
    reason: r.reason === null ? null : clip(r.reason),
  });
}

/**
 * Runs invocations on this host: policy check, image check, then DockerPort.run, which owns the
 * container from create to removal. No queue: past maxConcurrent a request fails at once, the
 * control plane holds the real limits. Nothing survives an agent restart except containers,
 * and start() removes those.
 */
export function createInvocationRunner(deps: InvocationRunnerDeps): InvocationRunner {
  const { port, hostId } = deps;
  const log = deps.log ?? noopLog;
  const maxConcurrent = deps.maxConcurrent ?? 16;
  const running = new Map<string, { abort: AbortController; done: Promise<void>; live: LiveOutput }>();
  const recent = new Set<string>();
  let stopped = false;
  let sweepTimer: NodeJS.Timeout | null = null;
  let sweepRetryMs = SWEEP_RETRY_MIN_MS;

  const emit = (r: InvocationResult) => {
    try {
      deps.onResult(r);
    } catch (err) {
      log.error({ err: message(err), id: r.id }, 'invocation result callback threw');
    }
  };
  const remember = (id: string) => {
    recent.add(id);
    if (recent.size > RECENT_IDS) recent.delete(recent.values().next().value as string);
  };

  const imagesSeen = new Map<string, number>();

  /**
   * In a free warm sandbox, the argv the cold payload would run (same policy check: the payload was
   * built above). The sandbox is discarded afterwards in the background, whatever happened; null
   * (no sandbox, or it could not start the process) means run cold.
   */
  async function runWarm(req: InvocationRequest, payload: CreatePayload, signal: AbortSignal, live: LiveOutput): Promise<RunResult | null> {
    const sandbox = deps.warm?.take(req);
    if (!sandbox || !deps.warm) return null;
    let r: RunResult | null = null;
    try {
      const argv = execArgv(sandbox, payload);
      if (argv.length === 0) return null; // nothing to run: the cold path reports the engine's own error
      const user = typeof payload.body.User === 'string' ? payload.body.User : req.spec.user;
      r = await port.exec({ containerId: sandbox.containerId, argv, user, stdin: req.stdin, timeoutMs: req.timeoutSeconds * 1000, maxOutputBytes: req.maxOutputBytes, signal, output: live.sinks() });
      return r;
    } finally {
      void deps.warm.discard(sandbox, r === null);
    }
  }

  /** `deliver` may be called early (result known, container not yet removed); the returned result comes after the removal. */
  async function execute(req: InvocationRequest, signal: AbortSignal, live: LiveOutput, deliver: (r: InvocationResult) => void): Promise<InvocationResult> {
    const t0 = performance.now();
    let payload: CreatePayload;
    try {
      payload = deps.build(req);
    } catch (err) {
      return failedResult(req.id, `refused: ${refusalOf(err)}`, t0);
    }
    const warm = await runWarm(req, payload, signal, live);
    if (warm) return toResult(req.id, warm);
    const image = req.spec.image;
    // A cold start is latency-bound: a recent "present" answer saves one engine call per run.
    if ((imagesSeen.get(image) ?? 0) < Date.now() - IMAGE_CHECK_TTL_MS) {
      let present: boolean;
      try {
        present = await port.imageExists(image);
      } catch (err) {
        return failedResult(req.id, `engine error: ${message(err)}`, t0);
      }
      if (!present) return failedResult(req.id, `image not found: ${image}`, t0);
      imagesSeen.set(image, Date.now());
    }
    const onResult = (early: RunResult) => deliver(toResult(req.id, early));
    const r = await port.run({ payload, stdin: req.stdin, timeoutMs: req.timeoutSeconds * 1000, maxOutputBytes: req.maxOutputBytes, signal, output: live.sinks(), onResult });
    if (r.containerId === null && r.status === 'failed') imagesSeen.delete(image); // never created: ask again next time
    return toResult(req.id, r);
  }

  /** Removes invocation containers no run of ours owns; `report` also emits a failed result for each. */
  async function sweep(report: boolean): Promise<void> {
    const stale = (await port.list(hostId)).filter((c) => c.kind === 'invocation' && !running.has(c.instanceId));
    const failures: unknown[] = [];
    for (const c of stale) {
      try {
        await port.remove(c.id);
        if (report) emit({ ...failedResult(c.instanceId, 'the agent restarted while it ran', performance.now()), containerId: c.id });
      } catch (err) {
        failures.push(err);
      }
    }
    if (stale.length > 0) log.info({ found: stale.length, failed: failures.length }, 'removed leftover invocation containers');
    if (failures.length > 0) throw new AggregateError(failures, `could not remove ${failures.length} leftover invocation container(s): ${message(failures[0])}`);
  }

  function scheduleSweep(report: boolean): void {
    if (stopped || sweepTimer) return;
    sweepTimer = setTimeout(() => {
      sweepTimer = null;
      sweep(report).then(
        () => (sweepRetryMs = SWEEP_RETRY_MIN_MS),
        (err: unknown) => {
          log.warn({ err: message(err), retryInMs: sweepRetryMs }, 'sweeping invocation containers failed');
          sweepRetryMs = Math.min(sweepRetryMs * 2, SWEEP_RETRY_MAX_MS);
          scheduleSweep(report);
        },
      );
    }, sweepRetryMs);
  }

  return {
    async start() {
      try {
        await sweep(true);
      } catch (err) {
        // The engine may come up later: keep trying in the background rather than refuse to start.
        log.warn({ err: message(err) }, 'could not sweep leftover invocation containers; retrying');
        scheduleSweep(true);
      }
    },

    run(req) {
      const t0 = performance.now();
      if (running.has(req.id) || recent.has(req.id)) {
        log.warn({ id: req.id }, 'ignored a repeated invocation request');
        return;
      }
      if (stopped) return emit(failedResult(req.id, 'agent stopping', t0));
      if (running.size >= maxConcurrent) return emit(failedResult(req.id, 'agent busy', t0));
      const abort = new AbortController();
      const live = new LiveOutput(req.maxOutputBytes);
      // Once per id: early (before the container's removal, which the run still waits for) or at the end.
      let delivered = false;
      const deliver = (result: InvocationResult) => {
        if (delivered) return;
        delivered = true;
        live.finish();
        remember(req.id);
        emit(result);
      };
      const done = execute(req, abort.signal, live, deliver)
        .catch((err: unknown) => {
          // Only a container the engine would not remove gets here: sweep it later. A result already
          // delivered stands (the tool ran); the leftover is the sweep's.
          log.error({ err: message(err), id: req.id }, 'invocation run failed');
          scheduleSweep(false);
          return failedResult(req.id, `engine error: ${message(err)}`, t0);
        })
        .then((result) => {
          running.delete(req.id);
          deliver(result);
        });
      running.set(req.id, { abort, done, live });
    },

    cancel(id) {
      running.get(id)?.abort.abort();
    },

    active: () => running.size,

    async whenIdle() {
      while (running.size > 0) await Promise.all([...running.values()].map((r) => r.done));
    },

    output: (id) => running.get(id)?.live,

    async stop() {
      stopped = true;
      if (sweepTimer) clearTimeout(sweepTimer);
      sweepTimer = null;
      const all = [...running.values()];
      for (const r of all) r.abort.abort();
      await Promise.all(all.map((r) => r.done));
    },
  };
}
