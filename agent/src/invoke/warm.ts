import { randomBytes } from 'node:crypto';
import type { DesiredInstance, InvocationRequest } from '../../../protocol/src/index.ts';
import { specHash } from '../docker/payload.ts';
import type { CreatePayload, DockerPort, ObservedContainer } from '../docker/port.ts';

/** pino-compatible (fields first, then message). */
export interface PoolLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/**
 * Warm sandboxes. The control plane writes `warm: N` of a tool as N desired instances of kind
 * 'warm' per eligible host (scheduler/warm.ts), so this pool learns its slots from the same
 * snapshot/delta stream as replicas, and a rollout or a delete reaches it the same way.
 *
 * Each slot holds at most one started, idle container: the tool's own create payload (payload.ts,
 * every lockdown identical) whose process is `sleep` under docker-init. An invocation of the same
 * tool version and spec takes one, runs its argv in it by exec, and the sandbox is then killed and
 * removed, never reused: one invocation per sandbox, so nothing (files in /tmp, processes, memory)
 * outlives it. The slot refills in the background. Only memory holds which sandbox is idle: at start
 * every warm container found is removed (one may have served an invocation before a crash).
 */

export interface WarmSandbox {
  slotId: string;
  containerId: string;
  tool: string;
  version: number;
  specHash: string;
  /** Names and versions of the secret values it was created with: a rotation makes it stale. */
  secretsKey: string;
  /** ENTRYPOINT and CMD of the image the container was created from. */
  entrypoint: string[];
  cmd: string[];
}

export interface WarmPoolDeps {
  port: DockerPort;
  hostId: string;
  /** Slot → create payload (buildCreatePayload, kind 'warm', with the name suffix). A throw is a policy refusal. */
  build: (inst: DesiredInstance, nameSuffix: string) => CreatePayload;
  log?: PoolLog;
  /** Health check of idle sandboxes and orphan sweep (default 2 s). */
  resyncMs?: number;
  /** Sandboxes being created at once (default 4): refills must not crowd out cold starts. */
  fillConcurrency?: number;
  /** Backoff of a slot whose fills fail (1 s doubling to 60 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Background work waits this long after the last warm run (default 50 ms); see `allowed()`. */
  quietMs?: number;
  /** ...but never longer than this (default 2 s). */
  maxDeferMs?: number;
}

export interface WarmPool {
  /** The host's desired instances; only kind 'warm' is used. */
  setDesired(instances: readonly DesiredInstance[]): void;
  /** An idle sandbox for exactly this tool, version and spec, now owned by the caller; null when none is free. */
  take(req: InvocationRequest): WarmSandbox | null;
  /** Kills and removes a taken sandbox. `dead`: it could not run anything, which counts as a failed fill. */
  discard(s: WarmSandbox, dead: boolean): Promise<void>;
  /** Why a slot has no sandbox (refused spec, image without `sleep`, engine error), for status reports. */
  reasons(): ReadonlyMap<string, string>;
  idle(): number;
  start(): void;
  /** Stops refilling and removes the idle sandboxes. */
  stop(): Promise<void>;
  /** Resolves once no pass and no fill is in flight. */
  whenIdle(): Promise<void>;
}

interface Slot {
  desired: DesiredInstance;
  hash: string;
  secrets: string;
  sandbox: WarmSandbox | null;
  filling: boolean;
  failures: number;
  notBefore: number;
  reason: string | null;
}

/** When the pool has just been emptied, how long refills wait for the runs in flight to end. */
const EMPTY_REFILL_DELAY_MS = 250;
const noopLog: PoolLog = { info() {}, warn() {}, error() {} };
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const refusalOf = (err: unknown): string => {
  const reason: unknown = (err as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' ? `refused: ${reason}` : `engine error: ${message(err)}`;
};

/** Identifies the secret values by name and version (never by value). */
export const secretsKey = (secrets: readonly { name: string; version: number }[] | undefined): string =>
  (secrets ?? []).map((x) => `${x.name}@${x.version}`).sort().join(',');

/** The argv Docker would run for `payload` in this image: ENTRYPOINT, then the payload's Cmd or else the image's CMD. */
export function execArgv(s: Pick<WarmSandbox, 'entrypoint' | 'cmd'>, payload: CreatePayload): string[] {
  const strings = (v: unknown): string[] | null => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null);
  const entrypoint = strings(payload.body.Entrypoint);
  // As in Docker: a payload that sets ENTRYPOINT drops the image's CMD.
  if (entrypoint) return [...entrypoint, ...(strings(payload.body.Cmd) ?? [])];
  return [...s.entrypoint, ...(strings(payload.body.Cmd) ?? s.cmd)];
}

/** Why an idle sandbox stopped: 127/126 is docker-init failing to exec the idle `sleep`. */
export function deathReason(exitCode: number | null): string {
  if (exitCode === 127 || exitCode === 126) return 'warm sandbox cannot idle: the image has no runnable `sleep` on PATH; invocations run cold';
  return `warm sandbox exited${exitCode === null ? '' : ` (code ${exitCode})`}`;
}

export function createWarmPool(deps: WarmPoolDeps): WarmPool {
  const { port, hostId } = deps;
  const log = deps.log ?? noopLog;
  const limit = Math.max(1, deps.fillConcurrency ?? 4);
  const initialMs = deps.backoff?.initialMs ?? 1_000;
  const maxMs = deps.backoff?.maxMs ?? 60_000;
  const slots = new Map<string, Slot>();
  /** Taken sandboxes not yet removed. */
  const inUse = new Set<string>();
  /** Names of containers being created: not orphans, though their ids are not known yet. */
  const fillingNames = new Set<string>();
  const fills = new Set<Promise<void>>();
  /** Used sandboxes waiting for their removal (deferred like refills). */
  const spent: { sb: WarmSandbox; done: () => void }[] = [];
  const quietMs = deps.quietMs ?? 50;
  const maxDeferMs = deps.maxDeferMs ?? 2_000;
  const gate = { running: 0, lastEnd: 0, deferredSince: 0, emptiedAt: 0, timer: null as NodeJS.Timeout | null, emptyTimer: null as NodeJS.Timeout | null };
  const s = { started: false, stopped: false, current: null as Promise<void> | null, dirty: false, resync: null as NodeJS.Timeout | null, wake: null as NodeJS.Timeout | null };

  function noteFailure(slot: Slot, reason: string): void {
    slot.failures++;
    const delay = Math.min(initialMs * 2 ** (slot.failures - 1), maxMs);
    slot.notBefore = Date.now() + delay;
    if (slot.reason !== reason) log.warn({ slot: slot.desired.id, tool: slot.desired.tool, retryInMs: delay, reason }, 'warm sandbox fill failed');
    slot.reason = reason;
    if (!s.wake && !s.stopped) s.wake = setTimeout(() => ((s.wake = null), kick()), delay);
  }

  /** Removes a container nobody will use, logging (not throwing) a failure: the next pass retries it as an orphan. */
  const removeQuietly = (id: string) => port.remove(id).catch((err: unknown) => log.warn({ err: message(err), container: id }, 'could not remove a warm sandbox'));

  async function fill(slot: Slot): Promise<void> {
    const want = slot.desired;
    let payload: CreatePayload;
    try {
      payload = deps.build(want, randomBytes(4).toString('hex'));
    } catch (err) {
      return noteFailure(slot, refusalOf(err));
    }
    fillingNames.add(payload.name);
    let id: string | null = null;
    try {
      id = await port.create(payload);
      await port.start(id);
      const info = await port.sandboxInfo(id);
      if (!info.running) throw Object.assign(new Error(deathReason(info.exitCode)), { dead: true });
      // The slot may have moved to another version, or gone, while this one was being made.
      if (s.stopped || slots.get(want.id) !== slot || slot.desired !== want) return void (await removeQuietly(id));
      slot.sandbox = { slotId: want.id, containerId: id, tool: want.tool, version: want.version, specHash: slot.hash, secretsKey: slot.secrets, entrypoint: info.entrypoint, cmd: info.cmd };
      slot.failures = 0;
      slot.reason = null;
    } catch (err) {
      if (id) await removeQuietly(id);
      noteFailure(slot, (err as { dead?: boolean }).dead ? message(err) : refusalOf(err));
    } finally {
      fillingNames.delete(payload.name);
    }
  }

  const idleCount = () => [...slots.values()].filter((sl) => sl.sandbox).length;

  /**
   * Whether refills and removals may run now. A create + start or a force-remove on the same engine
   * slows a concurrent exec several-fold (measured: a warm run of ~90 ms became 200–500 ms during
   * refills), so background work waits until no warm run is in flight and none ended in the last
   * quietMs: a burst of up to N invocations runs at exec speed and the pool refills after it.
   * An emptied pool refills once its last runs end (or EMPTY_REFILL_DELAY_MS into a long one): the
   * next invocation would be cold anyway. Nothing waits longer than maxDeferMs.
   */
  function allowed(now: number): boolean {
    if (gate.running === 0 && now - gate.lastEnd >= quietMs) return true;
    if (idleCount() === 0 && slots.size > 0 && (gate.running === 0 || now - gate.emptiedAt >= EMPTY_REFILL_DELAY_MS)) return true;
    return gate.deferredSince > 0 && now - gate.deferredSince >= maxDeferMs;
  }

  /** Runs the deferred work (removals of used sandboxes, refills) once allowed; else checks again shortly. */
  function kick(): void {
    if (!s.started || s.stopped) return;
    const now = performance.now();
    if (!allowed(now)) {
      gate.deferredSince ||= now;
      gate.timer ??= setTimeout(() => ((gate.timer = null), kick()), quietMs);
      return;
    }
    gate.deferredSince = 0;
    for (const { sb, done } of spent.splice(0)) void removeSpent(sb).finally(done);
    fillEmpty();
  }

  async function removeSpent(sb: WarmSandbox): Promise<void> {
    try {
      await port.remove(sb.containerId);
    } catch (err) {
      log.warn({ err: message(err), container: sb.containerId }, 'could not remove a used warm sandbox; the pool retries');
    } finally {
      inUse.delete(sb.containerId);
    }
  }

  /** Starts fills for empty slots, up to the concurrency limit. No engine read. */
  function fillEmpty(): void {
    if (!s.started || s.stopped) return;
    const now = Date.now();
    for (const slot of slots.values()) {
      if (fills.size >= limit) return;
      if (slot.sandbox || slot.filling || slot.notBefore > now) continue;
      slot.filling = true;
      const p: Promise<void> = fill(slot).finally(() => {
        slot.filling = false;
        fills.delete(p);
        kick();
      });
      fills.add(p);
    }
  }

  /** Health check: forget idle sandboxes that stopped, remove warm containers nobody owns, then refill. */
  async function pass(): Promise<void> {
    const observed = (await port.list(hostId)).filter((c) => c.kind === 'warm');
    const byId = new Map(observed.map((c) => [c.id, c]));
    for (const slot of slots.values()) {
      const c = slot.sandbox ? byId.get(slot.sandbox.containerId) : undefined;
      if (!slot.sandbox || c?.state === 'running') continue;
      slot.sandbox = null;
      noteFailure(slot, c ? deathReason(c.exitCode) : 'warm sandbox disappeared');
    }
    const known = new Set([...inUse, ...[...slots.values()].flatMap((sl) => (sl.sandbox ? [sl.sandbox.containerId] : []))]);
    const orphan = (c: ObservedContainer) => !known.has(c.id) && !fillingNames.has(c.name) && c.state !== 'removing';
    await Promise.all(observed.filter(orphan).map((c) => removeQuietly(c.id)));
    kick();
  }

  async function runPasses(): Promise<void> {
    do {
      s.dirty = false;
      await pass().catch((err: unknown) => log.warn({ err: message(err) }, 'warm pool pass failed'));
    } while (s.dirty && !s.stopped);
    s.current = null;
  }

  function trigger(): void {
    if (!s.started || s.stopped) return;
    if (s.current) s.dirty = true;
    else s.current = runPasses();
  }

  return {
    setDesired(instances) {
      const wanted = new Map(instances.filter((i) => i.kind === 'warm' && i.desired === 'running').map((i) => [i.id, i]));
      for (const id of slots.keys()) if (!wanted.has(id)) slots.delete(id); // its idle sandbox becomes an orphan
      for (const [id, inst] of wanted) {
        const hash = specHash(inst.spec);
        const secrets = secretsKey(inst.secrets);
        const slot = slots.get(id);
        if (!slot || slot.desired.version !== inst.version || slot.hash !== hash || slot.secrets !== secrets) {
          // New, or a rollout or secret rotation: a stale sandbox becomes an orphan and the slot fills anew.
          slots.set(id, { desired: inst, hash, secrets, sandbox: null, filling: false, failures: 0, notBefore: 0, reason: null });
        } else {
          slot.desired = inst;
        }
      }
      trigger();
    },

    take(req) {
      if (!s.started || s.stopped) return null;
      const hash = specHash(req.spec);
      const secrets = secretsKey(req.secrets);
      for (const slot of slots.values()) {
        const sb = slot.sandbox;
        if (!sb || sb.tool !== req.tool || sb.version !== req.version || sb.specHash !== hash || sb.secretsKey !== secrets) continue;
        slot.sandbox = null;
        inUse.add(sb.containerId);
        gate.running++;
        // The last idle one: refill soon even if this run lasts, but not under a short run's feet.
        if (idleCount() === 0) {
          gate.emptiedAt = performance.now();
          gate.emptyTimer ??= setTimeout(() => ((gate.emptyTimer = null), kick()), EMPTY_REFILL_DELAY_MS);
        }
        return sb;
      }
      return null;
    },

    async discard(sb, dead) {
      gate.running = Math.max(0, gate.running - 1);
      gate.lastEnd = performance.now();
      const slot = slots.get(sb.slotId);
      if (dead && slot && !slot.sandbox) noteFailure(slot, 'warm sandbox stopped before it could be used');
      // Dead or timed out, its process is gone; otherwise it only holds what the run left behind until removed.
      if (s.stopped) return removeSpent(sb);
      const removed = new Promise<void>((done) => spent.push({ sb, done }));
      kick();
      await removed;
    },

    reasons() {
      return new Map([...slots].flatMap(([id, sl]) => (sl.reason && !sl.sandbox ? [[id, sl.reason] as const] : [])));
    },

    idle: idleCount,

    start() {
      if (s.started || s.stopped) return;
      s.started = true;
      s.resync = setInterval(trigger, deps.resyncMs ?? 2_000);
      trigger();
    },

    async stop() {
      s.stopped = true;
      if (s.resync) clearInterval(s.resync);
      if (s.wake) clearTimeout(s.wake);
      if (gate.timer) clearTimeout(gate.timer);
      if (gate.emptyTimer) clearTimeout(gate.emptyTimer);
      await Promise.allSettled([s.current, ...fills, ...spent.splice(0).map(({ sb, done }) => removeSpent(sb).finally(done))]);
      const idle = [...slots.values()].flatMap((sl) => (sl.sandbox ? [sl.sandbox.containerId] : []));
      slots.clear();
      await Promise.all(idle.map(removeQuietly));
    },

    async whenIdle() {
      while (s.current || fills.size > 0 || spent.length > 0 || gate.timer || gate.emptyTimer) {
        await Promise.allSettled([s.current, ...fills]);
        if (spent.length > 0 || gate.timer || gate.emptyTimer) await new Promise((r) => setTimeout(r, quietMs));
      }
    },
  };
}
