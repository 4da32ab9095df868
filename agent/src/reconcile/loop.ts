import type { DesiredInstance, InstanceStatus } from '../../../protocol/src/index.ts';
import type { CreatePayload, DockerPort, EngineEvent, ObservedContainer } from '../docker/port.ts';
import { CrashLoop } from './crashLoop.ts';
import { isLive, plan } from './plan.ts';
import type { Plan } from './plan.ts';
import { diffStatus, statusOf } from './status.ts';

/** pino-compatible (fields first, then message). */
export interface ReconcilerLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export interface ReconcilerDeps {
  port: DockerPort;
  hostId: string;
  /** Spec → create payload (buildCreatePayload bound to its context). A throw is a policy refusal. */
  build: (inst: DesiredInstance) => CreatePayload;
  /** Statuses that changed since last sent, and the desired revision the pass applied. */
  onStatus: (changed: InstanceStatus[], appliedRevision: number) => void;
  log?: ReconcilerLog;
  /** Engine operations in flight at once (default 8). */
  concurrency?: number;
  /**
   * Periodic pass, so a lost event costs latency, never correctness (default 2 s, like the
   * kubelet's relist). The engine may emit `die` before its list shows the container exited.
   */
  resyncMs?: number;
  stopTimeoutSeconds?: number;
  /** Reasons other owners hold for instances this loop only reports (the warm pool's slots). */
  extraReasons?: () => ReadonlyMap<string, string>;
  /** Crash-loop backoff between restarts of one instance (1 s doubling to 60 s, reset after 60 s running). */
  restartBackoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
  /** Each finished pass, timed, and whether it failed (metrics reported with the heartbeat). */
  onPass?: (seconds: number, ok: boolean) => void;
}

export interface Reconciler {
  /** The whole desired set of this host. `full`: authoritative (snapshot on the live connection); only then are orphans removed. */
  setDesired(instances: DesiredInstance[], revision: number, full: boolean): void;
  /** Keeps the desired instances; stops removing orphans until the next full setDesired. */
  markDisconnected(): void;
  trigger(reason: string): void;
  start(): void;
  stop(): Promise<void>;
  passes(): number;
  /** Resolves once no pass is running or queued (timers for later passes do not count). */
  whenIdle(): Promise<void>;
}

type Reasons = Map<string, string>;
type Task = () => Promise<void>;

const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 5_000;
const EVENT_DEBOUNCE_MS = 20;

const noopLog: ReconcilerLog = { info() {}, warn() {}, error() {} };
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
/** PolicyRefusal carries a `reason` safe to report; duck-typed so this file does not depend on payload.ts. */
const refusalOf = (err: unknown): string => {
  const reason: unknown = (err as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' ? reason : message(err);
};

/** At most `limit` tasks in flight; failures are collected, not fatal to the others. */
async function runPool(tasks: Task[], limit: number): Promise<unknown[]> {
  const failures: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!().catch((err: unknown) => failures.push(err));
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), tasks.length) }, worker));
  return failures;
}

/** Subscribes to engine events, resubscribing with backoff when the stream fails. Returns the unsubscribe. */
function watchEvents(port: DockerPort, hostId: string, onEvent: () => void, onResubscribed: () => void, log: ReconcilerLog): () => void {
  let closed = false;
  let off: (() => void) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let retryMs = RETRY_INITIAL_MS;
  const subscribe = () => {
    let failed = false;
    const onError = (err: Error) => {
      if (failed || closed) return;
      failed = true;
      off?.();
      off = null;
      if (retryMs === RETRY_INITIAL_MS) log.warn({ err: message(err) }, 'engine event stream failed; resubscribing');
      timer = setTimeout(() => {
        timer = null;
        subscribe();
        onResubscribed(); // events were missed while the stream was down
      }, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };
    const handle = (e: EngineEvent) => {
      if (failed || closed) return;
      retryMs = RETRY_INITIAL_MS;
      // Invocation containers are the runner's alone: their create/start/die/destroy (several per
      // cold run) would only make the loop list the engine again, competing with the runs themselves.
      if (e.kind === 'invocation') return;
      // exec_create/exec_start/exec_die (a warm run) never change a container's state.
      if (e.action.startsWith('exec_')) return;
      onEvent();
    };
    try {
      const unsubscribe = port.events(hostId, handle, onError);
      if (failed) unsubscribe();
      else off = unsubscribe;
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  subscribe();
  return () => {
    closed = true;
    off?.();
    if (timer) clearTimeout(timer);
  };
}

/** The engine writes of one pass. `images` memoizes imageExists per pass; only "present" outlives it. */
function engineActions(port: DockerPort, build: ReconcilerDeps['build'], stopTimeout: number, reasons: Reasons, imagesPresent: Set<string>) {
  const images = new Map<string, Promise<boolean>>();
  /** Build and image check come before any engine write, so a refused spec costs no engine call. */
  const prepare = async (inst: DesiredInstance): Promise<CreatePayload | null> => {
    let payload: CreatePayload;
    try {
      payload = build(inst);
    } catch (err) {
      reasons.set(inst.id, `refused: ${refusalOf(err)}`);
      return null;
    }
    const ref = inst.spec.image;
    if (imagesPresent.has(ref)) return payload;
    let answer = images.get(ref);
    if (!answer) images.set(ref, (answer = port.imageExists(ref)));
    if (!(await answer)) {
      reasons.set(inst.id, `image not found: ${ref}`);
      return null;
    }
    imagesPresent.add(ref);
    return payload;
  };
  const launch = async (inst: DesiredInstance, payload: CreatePayload) => {
    let id: string;
    try {
      id = await port.create(payload);
    } catch (err) {
      imagesPresent.delete(inst.spec.image); // it may have been deleted since cached: ask again next pass
      throw err;
    }
    await port.start(id);
  };
  const retire = async (c: ObservedContainer) => {
    if (isLive(c)) await port.stop(c.id, stopTimeout);
    await port.remove(c.id);
  };
  const bare = (name: string) => name.replace(/^\//, '');
  return {
    retire,
    async create(inst: DesiredInstance): Promise<void> {
      const payload = await prepare(inst);
      if (payload) await launch(inst, payload);
    },
    /** New first, old after, so a replica is absent only as long as it must be. False if nothing was done. */
    async replace(inst: DesiredInstance, old: ObservedContainer): Promise<boolean> {
      const payload = await prepare(inst);
      if (!payload) return false; // the old container stays until the spec can be built
      // A stopped container serves nothing; one with the same name would block the new one.
      if (!isLive(old) || bare(payload.name) === bare(old.name)) {
        await retire(old);
        await launch(inst, payload);
      } else {
        await launch(inst, payload);
        await retire(old);
      }
      return true;
    },
  };
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const { port, hostId, onStatus } = deps;
  const log = deps.log ?? noopLog;
  const stopTimeout = deps.stopTimeoutSeconds ?? 10;
  const crash = new CrashLoop({
    initialMs: deps.restartBackoff?.initialMs ?? 1_000,
    maxMs: deps.restartBackoff?.maxMs ?? 60_000,
    resetAfterMs: deps.restartBackoff?.resetAfterMs ?? 60_000,
  });
  const imagesPresent = new Set<string>();
  const s = {
    desired: new Map<string, DesiredInstance>(),
    revision: 0,
    fullStateKnown: false,
    started: false,
    stopped: false,
    current: null as Promise<void> | null,
    dirty: false,
    passes: 0,
    retryMs: RETRY_INITIAL_MS,
    failStreak: 0,
    lastSent: new Map<string, InstanceStatus>(),
    lastSentRevision: -1,
    /** Set until the first full state after a (re)connect: the server may have missed statuses meanwhile. */
    resendAll: true,
    unwatch: null as (() => void) | null,
    resync: null as NodeJS.Timeout | null,
  };
  const timers = new Map<'retry' | 'debounce' | 'wake', { at: number; timer: NodeJS.Timeout }>();

  /** Earliest wins: an already-armed earlier timer of the same kind is kept. */
  function arm(kind: 'retry' | 'debounce' | 'wake', ms: number, reason: string): void {
    const at = Date.now() + ms;
    const armed = timers.get(kind);
    if (s.stopped || (armed && armed.at <= at)) return;
    if (armed) clearTimeout(armed.timer);
    const timer = setTimeout(() => {
      timers.delete(kind);
      trigger(reason);
    }, ms);
    timers.set(kind, { at, timer });
  }

  /** One task per plan entry; an engine failure is recorded on its instance and rethrown to fail the pass. */
  function tasksFor(p: Plan, reasons: Reasons, now: number): Task[] {
    const act = engineActions(port, deps.build, stopTimeout, reasons, imagesPresent);
    const guard = (id: string, fn: () => Promise<unknown>): Task => async () => {
      try {
        await fn();
      } catch (err) {
        reasons.set(id, `engine error: ${message(err)}`);
        throw err;
      }
    };
    // Removals first: they free the resources the creates may need.
    const tasks = p.remove.map(({ container: c }) => guard(c.instanceId, () => act.retire(c)));
    for (const c of p.stop) tasks.push(guard(c.instanceId, () => port.stop(c.id, stopTimeout)));
    for (const { desired: inst, container, why } of p.replace) {
      const wait = why === 'restart' ? crash.heldFor(inst.id, container.id, now) : 0;
      if (wait > 0) {
        reasons.set(inst.id, `restarting in ${Math.ceil(wait / 1000)}s`);
        crash.noteHeld(inst.id);
        arm('wake', wait, 'restart backoff elapsed');
        continue;
      }
      tasks.push(
        guard(inst.id, async () => {
          const replaced = await act.replace(inst, container);
          if (replaced && why === 'restart') crash.noteRestart(inst.id, container.exitCode);
        }),
      );
    }
    for (const { container: c } of p.start) tasks.push(guard(c.instanceId, () => port.start(c.id)));
    for (const inst of p.create) tasks.push(guard(inst.id, () => act.create(inst)));
    return tasks;
  }

  function report(wanted: DesiredInstance[], observed: ObservedContainer[], reasons: Reasons, revision: number): void {
    const statuses = statusOf(wanted, observed, reasons, crash.restarts, (id) => crash.info(id));
    const changed = diffStatus(s.lastSent, statuses);
    s.lastSent = new Map(statuses.map((st) => [st.id, st]));
    // A new revision is acknowledged even when no status moved: the server learns it was applied.
    if (changed.length === 0 && revision === s.lastSentRevision) return;
    s.lastSentRevision = revision;
    try {
      onStatus(changed, revision);
    } catch (err) {
      log.error({ err: message(err) }, 'status callback threw');
    }
  }

  async function pass(): Promise<void> {
    s.passes++;
    const { revision, fullStateKnown } = s;
    const wanted = [...s.desired.values()];
    const observed = await port.list(hostId);
    const now = Date.now();
    crash.observe(observed, s.desired, now);
    const reasons: Reasons = new Map(deps.extraReasons?.());
    const tasks = tasksFor(plan(wanted, observed, { fullStateKnown }), reasons, now);
    const failures = await runPool(tasks, deps.concurrency ?? 8);
    // Read back rather than predict: the engine is the only memory.
    const final = tasks.length > 0 ? await port.list(hostId) : observed;
    report(wanted, final, reasons, revision);
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} engine operation(s) failed: ${message(failures[0])}`);
  }

  async function runPasses(): Promise<void> {
    do {
      s.dirty = false;
      const t0 = performance.now();
      try {
        await pass();
        deps.onPass?.((performance.now() - t0) / 1000, true);
        if (s.failStreak > 0) log.info({ failedPasses: s.failStreak }, 'reconcile recovered');
        s.failStreak = 0;
        s.retryMs = RETRY_INITIAL_MS;
      } catch (err) {
        deps.onPass?.((performance.now() - t0) / 1000, false);
        // Logged once per streak. Triggers queued meanwhile are dropped: the retry covers them.
        if (s.failStreak++ === 0) log.warn({ err: message(err) }, 'reconcile pass failed; retrying with backoff');
        arm('retry', s.retryMs, 'retry after engine error');
        s.retryMs = Math.min(s.retryMs * 2, RETRY_MAX_MS);
        break;
      }
    } while (s.dirty && !s.stopped);
    s.dirty = false;
    s.current = null;
  }

  /**
   * Other triggers are not held back during engine backoff: their sources (events, resync,
   * new desired state) are rate-limited already, and one bad instance must not delay the rest.
   */
  function trigger(_reason: string): void {
    if (!s.started || s.stopped) return;
    if (s.current) s.dirty = true;
    else s.current = runPasses();
  }

  return {
    setDesired(instances, revision, full) {
      s.desired = new Map(instances.map((i) => [i.id, i]));
      s.revision = revision;
      s.fullStateKnown = full;
      if (full && s.resendAll) {
        s.resendAll = false;
        s.lastSent = new Map();
        s.lastSentRevision = -1;
      }
      trigger('desired state');
    },
    markDisconnected() {
      s.fullStateKnown = false;
      s.resendAll = true;
    },
    trigger,
    start() {
      if (s.started || s.stopped) return;
      s.started = true;
      // arm() keeps the earlier timer, so a steady event stream cannot postpone the pass forever.
      const onEvent = () => arm('debounce', EVENT_DEBOUNCE_MS, 'engine event');
      s.unwatch = watchEvents(port, hostId, onEvent, () => trigger('event stream resubscribed'), log);
      s.resync = setInterval(() => trigger('resync'), deps.resyncMs ?? 2_000);
      trigger('start');
    },
    async stop() {
      s.stopped = true;
      s.unwatch?.();
      if (s.resync) clearInterval(s.resync);
      for (const { timer } of timers.values()) clearTimeout(timer);
      timers.clear();
      if (s.current) await s.current;
    },
    passes: () => s.passes,
    async whenIdle() {
      for (;;) {
        if (s.current) await s.current;
        else if (timers.has('debounce')) await new Promise((r) => setTimeout(r, EVENT_DEBOUNCE_MS));
        else return;
      }
    },
  };
}
