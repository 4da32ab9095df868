import { randomBytes } from 'node:crypto';
import { auditContainer, INSTANCE_KINDS, Labels } from '../../../protocol/src/index.ts';
import type { InstanceKind } from '../../../protocol/src/index.ts';
import type { CreatePayload, DockerPort, EngineEvent, ObservedContainer, OutputBuffer, RunRequest, RunResult } from './port.ts';
import { factsFromInspect, type Inspect } from './auditContainers.ts';
import { MemoryLogs } from './memoryLogs.ts';
import { CappedOutput } from './run.ts';

export type MemoryState = 'created' | 'running' | 'exited';

export interface MemoryContainer {
  id: string;
  name: string;
  image: string;
  state: MemoryState;
  exitCode: number | null;
  labels: Record<string, string>;
  body: CreatePayload['body'];
}

type Method = keyof DockerPort;

export interface MemoryPort extends DockerPort {
  /** Marks a running container exited with `exitCode` and emits 'die' (a crash, an OOM kill…). */
  kill(id: string, exitCode: number): void;
  /** A snapshot: mutating it changes nothing. */
  containers(): MemoryContainer[];
  /** How many times each port method was called. */
  readonly calls: Record<Method, number>;
  /** Images imageExists() answers true for; empty means every image exists. */
  readonly images: Set<string>;
  /** Appends to a container's log (what its process printed). */
  writeLog(id: string, stream: 'stdout' | 'stderr', text: string): void;
  /** Log reads not yet ended. */
  openLogStreams(): number;
}

export interface MemoryPortOptions {
  cpus?: number;
  memoryMb?: number;
  /** Delay of each create, to make benchmarks feel an engine. */
  createLatencyMs?: number;
  /**
   * What run() does; its partial result is merged over the default (echo stdin to stdout, exit 0;
   * a non-zero exitCode without a status means `failed`). Abort and timeout win over a slower script.
   */
  runScript?: (req: RunRequest) => Partial<RunResult> | Promise<Partial<RunResult>>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const notFound = (id: string) => Object.assign(new Error(`no such container: ${id}`), { statusCode: 404 });

function observe(c: MemoryContainer): ObservedContainer | undefined {
  const l = c.labels;
  const kind = l[Labels.kind];
  if (!kind || !(INSTANCE_KINDS as readonly string[]).includes(kind)) return undefined;
  return {
    id: c.id,
    name: c.name,
    instanceId: l[Labels.instance] ?? '',
    tool: l[Labels.tool] ?? '',
    version: Number(l[Labels.version] ?? 0),
    revision: Number(l[Labels.revision] ?? 0),
    kind: kind as InstanceKind,
    state: c.state,
    exitCode: c.exitCode,
    labels: { ...l },
  };
}

/**
 * An in-memory engine for pure reconcile tests and fleet benchmarks. Same contract as the
 * dockerode port; events are delivered synchronously, before the call that caused them resolves.
 */
export function createMemoryPort(opts: MemoryPortOptions = {}): MemoryPort {
  const byId = new Map<string, MemoryContainer>();
  const idByName = new Map<string, string>();
  const subscribers = new Set<{ hostId: string; onEvent: (e: EngineEvent) => void }>();
  const calls: Record<Method, number> = { info: 0, list: 0, imageExists: 0, create: 0, start: 0, stop: 0, remove: 0, events: 0, run: 0, logs: 0, sandboxInfo: 0, exec: 0, sweepSecrets: 0, sweepNetworks: 0, auditContainers: 0 };
  const images = new Set<string>();
  const logs = new MemoryLogs();

  const emit = (c: MemoryContainer, action: string) => {
    const kind = c.labels[Labels.kind];
    const e: EngineEvent = { containerId: c.id, action, instanceId: c.labels[Labels.instance], ...(kind ? { kind } : {}) };
    for (const s of [...subscribers]) {
      if (c.labels[Labels.managed] === 'true' && c.labels[Labels.host] === s.hostId) s.onEvent(e);
    }
  };
  const get = (id: string) => {
    const c = byId.get(id) ?? byId.get(idByName.get(id) ?? '');
    if (!c) throw notFound(id);
    return c;
  };
  const exit = (c: MemoryContainer, code: number) => {
    c.state = 'exited';
    c.exitCode = code;
    emit(c, 'die');
    logs.stopped(c.id, false);
  };
  const add = (payload: CreatePayload): MemoryContainer => {
    if (idByName.has(payload.name)) {
      throw Object.assign(new Error(`container name already in use: ${payload.name}`), { statusCode: 409 });
    }
    const id = randomBytes(32).toString('hex');
    const image = typeof payload.body.Image === 'string' ? payload.body.Image : '';
    const c: MemoryContainer = { id, name: payload.name, image, state: 'created', exitCode: null, labels: { ...payload.body.Labels }, body: structuredClone(payload.body) };
    byId.set(id, c);
    idByName.set(c.name, id);
    emit(c, 'create');
    return c;
  };
  const drop = (c: MemoryContainer) => {
    if (c.state === 'running') exit(c, 137);
    byId.delete(c.id);
    idByName.delete(c.name);
    emit(c, 'destroy');
    logs.stopped(c.id, true);
  };

  return {
    calls,
    images,
    async info() {
      calls.info++;
      return { cpus: opts.cpus ?? 4, memoryMb: opts.memoryMb ?? 8192, endpoint: 'memory://' };
    },
    async list(hostId) {
      calls.list++;
      const out: ObservedContainer[] = [];
      for (const c of byId.values()) {
        if (c.labels[Labels.managed] !== 'true' || c.labels[Labels.host] !== hostId) continue;
        const o = observe(c);
        if (o) out.push(o);
      }
      return out;
    },
    async imageExists(ref) {
      calls.imageExists++;
      return images.size === 0 || images.has(ref);
    },
    async create(payload) {
      calls.create++;
      if (opts.createLatencyMs) await sleep(opts.createLatencyMs);
      return add(payload).id;
    },
    async start(id) {
      calls.start++;
      const c = get(id);
      if (c.state === 'running') return;
      c.state = 'running';
      c.exitCode = null;
      emit(c, 'start');
    },
    async stop(id) {
      calls.stop++;
      const c = byId.get(id) ?? byId.get(idByName.get(id) ?? '');
      if (!c || c.state !== 'running') return;
      emit(c, 'kill');
      exit(c, 143); // what a process that honours SIGTERM reports
      emit(c, 'stop');
    },
    // Secrets volumes exist only on a real engine; nothing is ever left to sweep here.
    async sweepSecrets() {
      calls.sweepSecrets++;
      return 0;
    },
    // Nor networks: containers here have no network to leave behind.
    async sweepNetworks() {
      calls.sweepNetworks++;
      return 0;
    },

    async remove(id) {
      calls.remove++;
      const c = byId.get(id) ?? byId.get(idByName.get(id) ?? '');
      if (c) drop(c);
    },
    events(hostId, onEvent) {
      calls.events++;
      const sub = { hostId, onEvent };
      subscribers.add(sub);
      return () => void subscribers.delete(sub);
    },
    async run(req) {
      calls.run++;
      const t0 = performance.now();
      if (req.signal.aborted) return runResult(req, { status: 'cancelled', exitCode: null }, null, t0);
      if (opts.createLatencyMs) await sleep(opts.createLatencyMs);
      const c = add(req.payload);
      c.state = 'running';
      emit(c, 'start');
      try {
        const script = opts.runScript ?? ((r: RunRequest) => ({ stdout: r.stdin ?? '' }));
        const got = await raceStop(Promise.resolve().then(() => script(req)), req.signal, req.timeoutMs);
        if (got === 'timeout' || got === 'cancelled') return runResult(req, { status: got, exitCode: null }, c.id, t0);
        return runResult(req, got, c.id, t0);
      } catch (err) {
        return runResult(req, { status: 'failed', exitCode: null, reason: `engine error: ${(err as Error).message}` }, c.id, t0);
      } finally {
        drop(c);
      }
    },
    logs(id, opts, sink) {
      calls.logs++;
      const c = byId.get(id) ?? byId.get(idByName.get(id) ?? '');
      if (!c) {
        queueMicrotask(() => sink.end(notFound(id)));
        return { pause() {}, resume() {}, close() {} };
      }
      return logs.read(c.id, c.state === 'running', opts, sink);
    },
    writeLog(id, stream, text) {
      logs.write(get(id).id, stream, text);
    },
    openLogStreams: () => logs.open(),
    async sandboxInfo(id) {
      calls.sandboxInfo++;
      const c = get(id);
      return { running: c.state === 'running', exitCode: c.state === 'exited' ? c.exitCode : null, entrypoint: [], cmd: [] };
    },
    /** Runs runScript against a request whose Cmd is the argv; timeout and abort kill the sandbox (exit 137). */
    async exec(req) {
      calls.exec++;
      const t0 = performance.now();
      const c = byId.get(req.containerId);
      if (!c || c.state !== 'running') return null;
      const run: RunRequest = { ...req, payload: { name: c.name, body: { ...structuredClone(c.body), Cmd: [...req.argv], User: req.user } } };
      const script = opts.runScript ?? ((r: RunRequest) => ({ stdout: r.stdin ?? '' }));
      try {
        const got = await raceStop(Promise.resolve().then(() => script(run)), req.signal, req.timeoutMs);
        if (got !== 'timeout' && got !== 'cancelled') return runResult(run, got, c.id, t0);
        if (c.state === 'running') exit(c, 137);
        return runResult(run, { status: got, exitCode: null }, c.id, t0);
      } catch (err) {
        return runResult(run, { status: 'failed', exitCode: null, reason: `engine error: ${(err as Error).message}` }, c.id, t0);
      }
    },
    async auditContainers() {
      calls.auditContainers++;
      return [...byId.values()].map((c) => {
        const container = factsFromInspect(inspectOf(c));
        return { container, findings: auditContainer(container) };
      });
    },
    kill(id, exitCode) {
      const c = get(id);
      if (c.state === 'running') exit(c, exitCode);
    },
    containers() {
      return [...byId.values()].map((c) => ({ ...c, labels: { ...c.labels }, body: structuredClone(c.body) }));
    },
  };
}

/**
 * What the engine's inspect would say of a container created from this body: the live audit then
 * judges a memory container exactly as the dockerode port judges a real one.
 */
function inspectOf(c: MemoryContainer): Inspect {
  const hc = c.body.HostConfig;
  const mounts = Array.isArray(hc.Mounts) ? (hc.Mounts as { Type?: string; Source?: string; Target?: string }[]) : [];
  return {
    Id: c.id,
    Name: `/${c.name}`,
    Config: { Image: c.image, Labels: { ...c.labels } },
    State: { Running: c.state === 'running' },
    HostConfig: hc,
    Mounts: mounts.map((m) => ({ Type: m.Type ?? '', Source: m.Source ?? '', Destination: m.Target ?? '' })),
  } as unknown as Inspect;
}

/** The script's promise, unless the signal aborts or the timeout elapses first. */
function raceStop<T>(p: Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T | 'timeout' | 'cancelled'> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const stop = new Promise<'timeout' | 'cancelled'>((resolve) => {
    onAbort = () => resolve('cancelled');
    if (signal.aborted) return resolve('cancelled');
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  return Promise.race([p, stop]).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  });
}

/** A full RunResult from a script's partial one, with output capped like the real engine port. */
function runResult(req: RunRequest, p: Partial<RunResult>, containerId: string | null, t0: number): RunResult {
  // A script may also write to req.output while it runs (live logs); the result reads back from it.
  const cap = (s: string, o: OutputBuffer = new CappedOutput(req.maxOutputBytes)) => {
    if (s) o.write(Buffer.from(s, 'utf8'));
    return o;
  };
  const out = cap(p.stdout ?? '', req.output?.stdout);
  const err = cap(p.stderr ?? '', req.output?.stderr);
  const exitCode = p.exitCode === undefined ? 0 : p.exitCode;
  return {
    status: p.status ?? (exitCode === 0 ? 'succeeded' : 'failed'),
    exitCode,
    stdout: out.text(),
    stderr: err.text(),
    truncated: (p.truncated ?? false) || out.truncated || err.truncated,
    durationMs: p.durationMs ?? Math.max(0, Math.round(performance.now() - t0)),
    containerId: p.containerId === undefined ? containerId : p.containerId,
    reason: p.reason ?? null,
  };
}
