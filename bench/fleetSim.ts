/**
 * A simulated host for bench/fleet: a real WebSocket client speaking the real agent protocol
 * (hello, then a status frame acknowledging every snapshot and delta), with no engine behind it:
 * every desired instance is reported running at once.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type DesiredInstance, type InstanceStatus, type ServerFrame } from '../protocol/src/index.ts';

export interface SimCredential {
  hostId: string;
  token: string;
}

export class SimAgent {
  private ws: WebSocket | null = null;
  private seq = 0;
  revision = 0;
  readonly desired = new Map<string, DesiredInstance>();
  /** When the first upsert of each tool version (`tool@version`) arrived, and the removal of a tool's instance (`tool@removed`) (ms, performance.now()). */
  readonly firstSeen = new Map<string, number>();

  constructor(
    private readonly wsUrl: string,
    readonly cred: SimCredential,
  ) {}

  /** Resolves once the hello was answered with the host's desired state (snapshot or delta). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.wsUrl, { headers: { authorization: `Bearer ${this.cred.token}` }, perMessageDeflate: false });
      this.ws = ws;
      let ready = false;
      ws.on('open', () => {
        const hello = { type: 'hello', protocol: PROTOCOL_VERSION, agentVersion: 'sim', hostName: `sim-${this.cred.hostId}`, labels: { fleet: 'sim' }, capacity: { cpus: 64, memoryMb: 262_144 }, lastRevision: this.revision };
        ws.send(JSON.stringify(hello));
      });
      ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as ServerFrame;
        if (f.type !== 'snapshot' && f.type !== 'delta') return;
        this.apply(f);
        if (!ready) {
          ready = true;
          resolve();
        }
      });
      ws.on('error', (err) => !ready && reject(err));
      ws.on('close', (code) => !ready && reject(new Error(`closed ${code} before the desired state arrived`)));
    });
  }

  private apply(f: Extract<ServerFrame, { type: 'snapshot' | 'delta' }>): void {
    const now = performance.now();
    const changed: DesiredInstance[] = [];
    if (f.type === 'snapshot') {
      this.desired.clear();
      for (const i of f.instances) this.desired.set(i.id, i);
      changed.push(...f.instances);
    } else {
      for (const id of f.removes) {
        const gone = this.desired.get(id);
        if (gone && !this.firstSeen.has(`${gone.tool}@removed`)) this.firstSeen.set(`${gone.tool}@removed`, now);
        this.desired.delete(id);
      }
      for (const i of f.upserts) this.desired.set(i.id, i);
      changed.push(...f.upserts);
    }
    for (const i of changed) if (!this.firstSeen.has(`${i.tool}@${i.version}`)) this.firstSeen.set(`${i.tool}@${i.version}`, now);
    this.revision = f.revision;
    const statuses: InstanceStatus[] = changed.map((i) => ({ id: i.id, state: 'running', containerId: `sim${i.id}`, exitCode: null, restarts: 0, reason: null, version: i.version }));
    this.ws?.send(JSON.stringify({ type: 'status', seq: ++this.seq, revision: this.revision, instances: statuses.slice(0, 10_000) }));
  }

  close(): void {
    this.ws?.terminate();
  }
}
