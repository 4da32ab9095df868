import type { WebSocket } from 'ws';
import { parseAgentFrame, PROTOCOL_VERSION, type Hello, type InvocationResult, type ServerFrame, type Status } from '../../../../protocol/src/index.ts';
import type { Logger } from '../logger.ts';

/** Send-buffer cap: an agent that stops reading is closed rather than buffered forever. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const HELLO_TIMEOUT_MS = 10_000;

export interface SessionHandlers {
  onHello(s: AgentSession, hello: Hello): Promise<void>;
  onStatus(s: AgentSession, status: Status): Promise<void>;
  onHeartbeat(s: AgentSession): Promise<void>;
  onInvocationResult(s: AgentSession, result: InvocationResult): Promise<void>;
  onClose(s: AgentSession): void;
}

/** One agent connection: frames in order, one at a time; liveness by ws ping/pong. */
export class AgentSession {
  /** Revision of the last snapshot or delta sent. */
  sentRevision = -1;
  lastSeq = -1;
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
  ) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.close(1003, 'binary frames are not accepted');
      const text = data.toString('utf8');
      // Frames are handled strictly in arrival order.
      this.queue = this.queue.then(() => this.handle(text)).catch((err) => this.log.error({ err, hostId }, 'agent frame handling failed'));
    });
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.finish());
    ws.on('error', (err) => this.log.warn({ err: err.message, hostId }, 'agent socket error'));
    this.timers.push(
      setInterval(() => {
        if (!this.alive) return this.ws.terminate();
        this.alive = false;
        this.ws.ping();
      }, heartbeatMs),
      setTimeout(() => !this.helloDone && this.close(4002, 'no hello'), HELLO_TIMEOUT_MS),
    );
  }

  private async handle(text: string): Promise<void> {
    if (this.closed) return;
    const r = parseAgentFrame(text);
    if (!r.ok) {
      this.send({ type: 'error', code: 'invalid_frame', message: r.error });
      return;
    }
    const f = r.frame;
    if (!this.helloDone) {
      if (f.type !== 'hello') return this.close(4002, 'expected hello');
      if (f.protocol !== PROTOCOL_VERSION) return this.close(4003, `protocol ${PROTOCOL_VERSION} required`);
      this.helloDone = true;
      return this.handlers.onHello(this, f);
    }
    if (f.type === 'status') {
      if (f.seq <= this.lastSeq) return; // replayed or reordered: ignore
      this.lastSeq = f.seq;
      return this.handlers.onStatus(this, f);
    }
    if (f.type === 'heartbeat') return this.handlers.onHeartbeat(this);
    if (f.type === 'invocationResult') return this.handlers.onInvocationResult(this, f.result);
    this.send({ type: 'error', code: 'unexpected_frame', message: 'hello already received' });
  }

  send(frame: ServerFrame): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.close(1008, 'send buffer full');
      return false;
    }
    this.ws.send(JSON.stringify(frame));
    return true;
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
