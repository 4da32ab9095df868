import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { MAX_FRAME_BYTES } from '../../../../protocol/src/index.ts';
import type { TokenService } from '../auth/tokens.ts';
import { bearer } from '../http/middleware/auth.ts';
import type { Logger } from '../logger.ts';
import type { EventLog } from '../services/events.ts';
import type { HostService } from '../services/hosts.ts';
import type { AgentHub } from './hub.ts';

export const AGENT_PATH = '/api/v1/agent/connect';

interface UpgradeDeps {
  tokens: TokenService;
  hosts: HostService;
  hub: AgentHub;
  events: EventLog;
  log: Logger;
}

function refuse(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ error: { code: status === 401 ? 'unauthenticated' : status === 403 ? 'forbidden' : 'not_found', message: text } });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** Agents are authenticated before the WebSocket handshake completes; browsers are turned away. */
export function attachAgentEndpoint(server: Server, d: UpgradeDeps): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    void handle(req, socket, head).catch((err) => {
      d.log.error({ err }, 'agent upgrade failed');
      refuse(socket, 500 as never, 'Internal Server Error');
    });
  });

  async function handle(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const path = (req.url ?? '').split('?')[0];
    if (path !== AGENT_PATH) return refuse(socket, 404, 'Not Found');
    const audit = (reason: string) =>
      d.events.refused({ actor: `ip:${req.socket.remoteAddress ?? 'unknown'}`, action: 'agent.connect', reason });
    if (req.headers.origin) {
      await audit('browser Origin header on the agent endpoint');
      return refuse(socket, 403, 'Forbidden');
    }
    const raw = bearer(req.headers.authorization);
    let hostId: string | null = null;
    try {
      if (raw) hostId = (await d.tokens.verify(raw, 'agent')).hostId;
    } catch {
      hostId = null;
    }
    if (!hostId || !(await d.hosts.exists(hostId))) {
      await audit(raw ? 'invalid, expired or revoked agent token' : 'no agent token');
      return refuse(socket, 401, 'Unauthorized');
    }
    const id = hostId;
    wss.handleUpgrade(req, socket, head, (ws) => d.hub.attach(id, ws));
  }
  return wss;
}
