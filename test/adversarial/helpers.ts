import { createHmac } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type ServerFrame } from '../../protocol/src/index.ts';
import type { EventLog, EventRow } from '../../apps/api/src/services/events.ts';
import { waitFor } from '../helpers/cluster.ts';

// ── audit accounting ──────────────────────────────────────────────────────────

/** Id of the newest event, after closing the current coalescing window (so older refusals cannot leak into a count). */
export async function eventMark(events: EventLog): Promise<number> {
  await events.flush();
  return (await events.list({ limit: 1 })).at(-1)?.id ?? 0;
}

/** Events after `mark` matching `match`, once pending coalesced summaries are written. */
export async function eventsSince(events: EventLog, mark: number, match: (e: EventRow) => boolean = () => true): Promise<EventRow[]> {
  await events.flush();
  return (await events.list({ afterId: mark, limit: 1000 })).filter(match);
}

/**
 * How many refusals the audit trail accounts for after `mark`: a refused event counts
 * once, a summary event (data.coalesced) for the repeats it stands for. Equal to the
 * number of refused requests when every refusal was recorded.
 */
export async function refusalsSince(events: EventLog, mark: number, match: (e: EventRow) => boolean = () => true): Promise<number> {
  const rows = await eventsSince(events, mark, (e) => e.outcome === 'refused' && match(e));
  return rows.reduce((n, e) => n + Number(e.data?.coalesced ?? 1), 0);
}

export const withStatus = (status: number, action?: string) => (e: EventRow) =>
  e.data?.status === status && (action === undefined || e.action === action);

// ── hand-made tokens ──────────────────────────────────────────────────────────

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A JWS compact token signed with HMAC (`hash`) under `key`, or unsigned when key is null. */
export function craftJwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: Uint8Array | null, hash = 'sha256'): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${key ? createHmac(hash, key).update(input).digest('base64url') : ''}`;
}

/** The claims of a token as issued, to re-sign with exactly one thing changed. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

// ── a hand-driven agent ───────────────────────────────────────────────────────

export class FakeAgent {
  frames: ServerFrame[] = [];
  closed: { code: number; reason: string; at: number } | null = null;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.frames.push(JSON.parse(d.toString()) as ServerFrame));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString(), at: Date.now() }));
    ws.on('error', () => {});
  }

  static async connect(url: string, token: string, opts: WebSocket.ClientOptions = {}): Promise<FakeAgent> {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, maxPayload: 64 * 1024 * 1024, ...opts });
    await new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej)));
    return new FakeAgent(ws);
  }

  send(o: unknown): void {
    this.ws.send(typeof o === 'string' || Buffer.isBuffer(o) ? o : JSON.stringify(o));
  }

  hello(capacity = { cpus: 1, memoryMb: 512 }, lastRevision = 0): void {
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, agentVersion: 'test', hostName: 'fake', labels: {}, capacity, lastRevision });
  }

  async next<T extends ServerFrame['type']>(type: T): Promise<Extract<ServerFrame, { type: T }>> {
    return (await waitFor(async () => this.frames.find((f) => f.type === type), `${type} frame`, 5000, 10)) as Extract<ServerFrame, { type: T }>;
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string; at: number }> {
    return waitFor(async () => this.closed, 'connection closed', timeoutMs, 10);
  }
}

/** Status of an upgrade attempt: 101 when accepted, else the HTTP status it was refused with. */
export async function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => (ws.close(), resolve(101)));
    ws.on('error', () => {});
  });
}

/** Enrolls a fake host labelled role=<name> (so tests can pin placements to it). */
export async function enroll(baseUrl: string, joinToken: string, name: string): Promise<{ hostId: string; token: string }> {
  const res = await fetch(`${baseUrl}/api/v1/agent/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${joinToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hostName: name, labels: { role: name } }),
  });
  return (await res.json()) as { hostId: string; token: string };
}
