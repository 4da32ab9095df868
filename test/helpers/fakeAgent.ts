import WebSocket from 'ws';
import { PROTOCOL_VERSION, type ServerFrame } from '../../protocol/src/index.ts';
import { waitFor, type TestCluster } from './cluster.ts';

/** Every fake host is labelled role=<name>, so tests can pin placements to their own host. */
export async function enrollFake(cluster: TestCluster, name: string): Promise<{ hostId: string; token: string }> {
  const join = await cluster.server!.mintJoinToken();
  const res = await fetch(`${cluster.url}/api/v1/agent/enroll`, { method: 'POST', headers: { authorization: `Bearer ${join}`, 'content-type': 'application/json' }, body: JSON.stringify({ hostName: name, labels: { role: name } }) });
  return (await res.json()) as { hostId: string; token: string };
}

/** A hand-driven agent speaking the real protocol over a real WebSocket. */
export class FakeAgent {
  frames: ServerFrame[] = [];
  closed: { code: number; reason: string } | null = null;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.frames.push(JSON.parse(d.toString())));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }
  static async connect(cluster: TestCluster, token: string): Promise<FakeAgent> {
    const ws = new WebSocket(`${cluster.url.replace('http', 'ws')}/api/v1/agent/connect`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej)));
    return new FakeAgent(ws);
  }
  send(o: unknown) {
    this.ws.send(typeof o === 'string' ? o : JSON.stringify(o));
  }
  hello(lastRevision = 0) {
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, agentVersion: 'test', hostName: 'fake', labels: {}, capacity: { cpus: 1, memoryMb: 512 }, lastRevision });
  }
  async next<T extends ServerFrame['type']>(type: T): Promise<Extract<ServerFrame, { type: T }>> {
    return (await waitFor(async () => this.frames.find((f) => f.type === type), `${type} frame`, 5000, 10)) as Extract<ServerFrame, { type: T }>;
  }
}

