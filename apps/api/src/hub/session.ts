import type { WebSocket } from 'ws';
import { parseAgentFrame, PROTOCOL_VERSION, type AuditReport, type Hello, type InvocationResult, type LogChunk, type LogEnd, type ServerFrame, type Status } from '../../../../protocol/src/index.ts';
import type { Logger } from '../logger.ts';
import type { FrameMeter } from '../metrics/metrics.ts';

/** Send-buffer cap: an agent that stops reading is closed rather than buffered forever. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const HELLO_TIMEOUT_MS = 10_000;
const NO_METER: FrameMeter = { received() {}, sent() {}, dropped() {} };

export interface SessionHandlers {
  onHello(s: AgentSession, hello: Hello): Promise<void>;
  onStatus(s: AgentSession, status: Status): Promise<void>;
  onHeartbeat(s: AgentSession): Promise<void>;
  onInvocationResult(s: AgentSession, result: InvocationResult): Promise<void>;
  /** Output of a log stream (ignored unless the server opened it on this host). */
  onLog(s: AgentSession, frame: LogChunk | LogEnd): void;
  /** A live audit report (ignored unless the server asked this host for it). */
  onAuditReport(s: AgentSession, frame: AuditReport): void;
  onClose(s: AgentSession): void;
  /** The session refused something the agent sent or did (audited by the hub). */
  onRefused(s: AgentSession, reason: string): void;
}

/** ws errors that mean the peer broke the protocol, with the reason audited. */
const WS_REFUSALS: Record<string, string> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'frame larger than the limit (closed with 1009)',
  WS_ERR_INVALID_UTF8: 'frame is not valid UTF-8 (closed with 1007)',
};
const WS_DROP_REASONS: Record<string, string> = { WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'too_large', WS_ERR_INVALID_UTF8: 'invalid_utf8' };

/** One agent connection: frames in order, one at a time; liveness by ws ping/pong. */
export class AgentSession {
  /** Revision of the last snapshot or delta sent. */
  sentRevision = -1;
  lastSeq = -1;
  /** Revision of the last status applied from this connection; older ones are stale. */
  lastStatusRevision = -1;
  helloDone = false;
  /** Set by the hub once the resume point is known; pushes wait for it. */
  ready = false;
  /** The next push must be sent even when empty (it completes the agent's state). */
  mustSend = false;
  closed = false;
  private alive = true;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    readonly hostId: string,
    private readonly ws: WebSocket,
    private readonly handlers: SessionHandlers,
    private readonly log: Logger,
    heartbeatMs: number,
    private readonly maxBufferedBytes = MAX_BUFFERED_BYTES,
    private readonly meter: FrameMeter = NO_METER,
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        meter.dropped('in', 'binary');
        return this.refuse('binary frame', () => this.close(1003, 'binary frames are not accepted'));
      }
      const text = data.toString('utf8');
      // Frames are handled strictly in arrival order.
      this.queue = this.queue.then(() => this.handle(text)).catch((err) => this.log.error({ err, hostId }, 'agent frame handling failed'));
    });
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.finish());
    ws.on('error', (err) => {
      const code = (err as { code?: string }).code ?? '';
      const refusal = WS_REFUSALS[code];
      if (refusal) meter.dropped('in', WS_DROP_REASONS[code] ?? 'other');
      if (refusal) this.handlers.onRefused(this, refusal);
      else this.log.warn({ err: err.message, hostId }, 'agent socket error');
    });
    this.timers.push(
      setInterval(() => {
        // No pong since the previous ping: at most two intervals of silence.
        if (!this.alive) return this.refuse('no pong within two heartbeat intervals', () => this.terminate());
        this.alive = false;
        this.ws.ping();
      }, heartbeatMs),
      setTimeout(() => !this.helloDone && this.refuse('no hello in time', () => this.close(4002, 'no hello')), HELLO_TIMEOUT_MS),
    );
  }

  private async handle(text: string): Promise<void> {
    if (this.closed) return;
    const r = parseAgentFrame(text);
    if (!r.ok) {
      this.meter.dropped('in', 'invalid_frame');
      this.handlers.onRefused(this, 'invalid frame');
      this.send({ type: 'error', code: 'invalid_frame', message: r.error });
      return;
    }
    const f = r.frame;
    this.meter.received(f.type);
    if (!this.helloDone) {
      if (f.type !== 'hello') return this.refuse('frame before hello', () => this.close(4002, 'expected hello'));
      if (f.protocol !== PROTOCOL_VERSION) return this.refuse('unsupported protocol version', () => this.close(4003, `protocol ${PROTOCOL_VERSION} required`));
      this.helloDone = true;
      return this.handlers.onHello(this, f);
    }
    if (f.type === 'status') {
      // Replayed, reordered or about an older desired state than one already applied: ignore.
      if (f.seq <= this.lastSeq) return this.handlers.onRefused(this, 'status with an old sequence number ignored');
      this.lastSeq = f.seq;
      if (f.revision < this.lastStatusRevision) return this.handlers.onRefused(this, 'status for an older revision ignored');
      this.lastStatusRevision = f.revision;
      return this.handlers.onStatus(this, f);
    }
    if (f.type === 'heartbeat') {
      if (f.reconcile) this.meter.reconcile?.(f.reconcile);
      return this.handlers.onHeartbeat(this);
    }
    if (f.type === 'invocationResult') return this.handlers.onInvocationResult(this, f.result);
    if (f.type === 'logChunk' || f.type === 'logEnd') return this.handlers.onLog(this, f);
    if (f.type === 'auditReport') return this.handlers.onAuditReport(this, f);
    this.handlers.onRefused(this, 'second hello');
    this.send({ type: 'error', code: 'unexpected_frame', message: 'hello already received' });
  }

  send(frame: ServerFrame): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) {
      this.meter.dropped('out', 'not_connected');
      return false;
    }
    // Checked before sending, so one large frame to a healthy agent is fine; a backlog is not.
    // Memory per agent is bounded by the cap plus one frame.
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      // Dropped at once: a close frame would only queue behind the backlog it cannot drain.
      this.meter.dropped('out', 'send_buffer_full');
      this.refuse('send buffer over the cap (agent not reading)', () => this.terminate());
      return false;
    }
    this.ws.send(JSON.stringify(frame));
    this.meter.sent(frame.type);
    return true;
  }

  private refuse(reason: string, then: () => void): void {
    if (this.closed) return;
    this.handlers.onRefused(this, reason);
    then();
  }

  private terminate(): void {
    this.ws.terminate();
    this.finish();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.forEach((t) => clearTimeout(t));
    this.handlers.onClose(this);
  }
}
