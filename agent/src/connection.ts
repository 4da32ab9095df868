import WebSocket from 'ws';
import {
  MAX_FRAME_BYTES,
  parseServerFrame,
  PROTOCOL_VERSION,
  type AgentFrame,
  type AuditReport,
  type DesiredInstance,
  type Hello,
  type InstanceStatus,
  type InvocationRequest,
  type InvocationResult,
  type LogsRequest,
  type ReconcileReport,
} from '../../protocol/src/index.ts';

export interface ConnectionLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface ConnectionDeps {
  /** ws:// or wss:// URL of /api/v1/agent/connect */
  url: string;
  token: () => string;
  hello: () => Promise<Omit<Hello, 'type' | 'protocol' | 'lastRevision'>>;
  /** A complete desired state (snapshot, or delta applied on what we had). */
  onDesired(instances: DesiredInstance[], revision: number): void;
  onDisconnected(): void;
  /** The server refused our credential (401 at upgrade). */
  onUnauthorized(): void;
  /** An `invoke` frame: run it once and answer through sendInvocationResult. */
  onInvoke?(req: InvocationRequest): void;
  /** A `cancel` frame for an invocation. */
  onCancel?(id: string): void;
  /** Log stream frames (agent/src/logs/streamer.ts). */
  onLogs?(req: LogsRequest): void;
  onLogCredit?(streamId: string, bytes: number): void;
  onLogsCancel?(streamId: string): void;
  /** An `auditRequest` frame: inspect the engine and answer through sendAuditReport. */
  onAuditRequest?(id: string): void;
  log: ConnectionLog;
  heartbeatMs?: number;
  /** Reconcile passes since the last heartbeat, sent with the next one (the control plane's metrics). */
  reconcileReport?: () => ReconcileReport | undefined;
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 15_000;
/** Invocation results held while disconnected; past either bound the oldest are dropped. */
const MAX_PENDING_RESULTS = 1_000;
const MAX_PENDING_OUTPUT_CHARS = 64 * 1024 * 1024;

/**
 * Keeps one WebSocket to the control plane: reconnects with jittered backoff, resumes
 * from the last applied revision, and keeps the desired state it was given across reconnects.
 */
export class AgentConnection {
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly desired = new Map<string, DesiredInstance>();
  /** Results not yet handed to an open socket after our hello, oldest first. */
  private pendingResults: InvocationResult[] = [];
  private pendingChars = 0;
  /** True once hello went out on the current socket: no frame may precede it. */
  private helloSent = false;
  /** Revision of the desired state held; 0 until the first snapshot. */
  revision = 0;
  connected = false;

  constructor(private readonly d: ConnectionDeps) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000, 'agent stopping');
    this.ws?.terminate();
  }

  sendStatus(instances: InstanceStatus[], revision: number): boolean {
    return this.send({ type: 'status', seq: ++this.seq, revision, instances });
  }

  /** Sends now if connected; otherwise keeps it (bounded) and sends it after the next hello. */
  sendInvocationResult(result: InvocationResult): boolean {
    if (this.pendingResults.length === 0 && this.trySendResult(result)) return true;
    this.keepResult(result);
    return false;
  }

  /** A log stream frame, only after our hello on an open socket (never held: streams end with the connection). */
  sendLog(frame: AgentFrame): boolean {
    if (!this.helloSent) return false;
    return this.send(frame);
  }

  /** An audit report, only after our hello on an open socket (never held: the server stops waiting when we disconnect). */
  sendAuditReport(frame: AuditReport): boolean {
    if (!this.helloSent) return false;
    return this.send(frame);
  }

  private trySendResult(result: InvocationResult): boolean {
    const ws = this.ws;
    if (!ws || !this.helloSent || ws.readyState !== WebSocket.OPEN) return false;
    const frame: AgentFrame = { type: 'invocationResult', result };
    // The callback reports a write that failed after send() returned: keep the result for the next connection.
    ws.send(JSON.stringify(frame), (err) => err && this.keepResult(result));
    return true;
  }

  private keepResult(result: InvocationResult): void {
    this.pendingResults.push(result);
    this.pendingChars += result.stdout.length + result.stderr.length;
    while (this.pendingResults.length > MAX_PENDING_RESULTS || (this.pendingChars > MAX_PENDING_OUTPUT_CHARS && this.pendingResults.length > 1)) {
      const dropped = this.pendingResults.shift();
      if (!dropped) break;
      this.pendingChars -= dropped.stdout.length + dropped.stderr.length;
      this.d.log.warn({ id: dropped.id }, 'dropped an unsent invocation result: too many held while disconnected');
    }
  }

  private flushResults(): void {
    const held = this.pendingResults;
    this.pendingResults = [];
    this.pendingChars = 0;
    for (const [i, r] of held.entries()) {
      if (!this.trySendResult(r)) {
        for (const rest of held.slice(i)) this.keepResult(rest);
        return;
      }
    }
  }

  private send(frame: AgentFrame): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.d.url, { headers: { authorization: `Bearer ${this.d.token()}` }, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401) this.d.onUnauthorized();
      this.d.log.warn({ status: res.statusCode }, 'control plane refused the connection');
      ws.terminate();
    });
    ws.on('open', async () => {
      this.attempt = 0;
      this.connected = true;
      this.d.log.info({ url: this.d.url, lastRevision: this.revision }, 'connected to control plane');
      const base = await this.d.hello();
      if (!this.send({ type: 'hello', protocol: PROTOCOL_VERSION, lastRevision: this.revision, ...base })) return;
      this.helloSent = true;
      this.flushResults();
      this.heartbeat = setInterval(() => {
        const reconcile = this.d.reconcileReport?.();
        this.send({ type: 'heartbeat', at: Date.now(), ...(reconcile ? { reconcile } : {}) });
      }, this.d.heartbeatMs ?? 5000);
    });
    ws.on('message', (data, isBinary) => !isBinary && this.onFrame(data.toString('utf8')));
    ws.on('error', (err) => this.d.log.warn({ err: err.message }, 'control plane connection error'));
    ws.on('close', () => {
      if (this.ws === ws) this.helloSent = false;
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (this.ws === ws) this.ws = null;
      if (this.connected) this.d.onDisconnected();
      this.connected = false;
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++);
    const delay = cap / 2 + Math.random() * (cap / 2); // jitter: many agents must not reconnect in lockstep
    this.timer = setTimeout(() => this.open(), delay);
  }

  private onFrame(raw: string): void {
    const r = parseServerFrame(raw);
    if (!r.ok) {
      this.d.log.warn({ error: r.error }, 'refused a frame from the control plane');
      return;
    }
    const f = r.frame;
    switch (f.type) {
      case 'snapshot':
        this.desired.clear();
        for (const i of f.instances) this.desired.set(i.id, i);
        this.revision = f.revision;
        this.d.onDesired([...this.desired.values()], f.revision);
        return;
      case 'delta':
        if (f.fromRevision !== this.revision) {
          // A gap: start over with a snapshot rather than guess.
          this.d.log.warn({ have: this.revision, from: f.fromRevision }, 'delta does not follow our revision; resyncing');
          this.revision = 0;
          this.ws?.close(4000, 'resync');
          return;
        }
        for (const id of f.removes) this.desired.delete(id);
        for (const i of f.upserts) this.desired.set(i.id, i);
        this.revision = f.revision;
        this.d.onDesired([...this.desired.values()], f.revision);
        return;
      case 'welcome':
        this.d.log.info({ hostId: f.hostId }, 'control plane welcomed us');
        return;
      case 'error':
        this.d.log.warn({ code: f.code, message: f.message }, 'control plane reported an error');
        return;
      case 'heartbeat':
        return;
      case 'invoke':
        this.d.onInvoke?.(f.invocation);
        return;
      case 'cancel':
        this.d.onCancel?.(f.id);
        return;
      case 'logs':
        this.d.onLogs?.(f);
        return;
      case 'logCredit':
        this.d.onLogCredit?.(f.streamId, f.bytes);
        return;
      case 'logsCancel':
        this.d.onLogsCancel?.(f.streamId);
        return;
      case 'auditRequest':
        this.d.onAuditRequest?.(f.id);
        return;
    }
  }
}
