import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ToolSpecSchema } from '../../protocol/src/index.ts';
import type { InvocationRequest, InvocationResult } from '../../protocol/src/index.ts';
import { AgentConnection } from './connection.ts';

const quiet = { info() {}, warn() {} };
const waitFor = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};
const result = (id: string, over: Partial<InvocationResult> = {}): InvocationResult => ({
  id,
  status: 'succeeded',
  exitCode: 0,
  stdout: 'out',
  stderr: '',
  truncated: false,
  durationMs: 5,
  containerId: null,
  reason: null,
  ...over,
});

/** A loopback WebSocket server recording every frame the agent sends, per socket. */
async function fakeServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const frames: { type: string; [k: string]: unknown }[] = [];
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/api/v1/agent/connect`;
  return { wss, url, frames, sockets, close: () => new Promise((r) => wss.close(r)) };
}

describe('AgentConnection and invocations', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function connect(url: string, over: { onInvoke?: (r: InvocationRequest) => void; onCancel?: (id: string) => void } = {}) {
    const conn = new AgentConnection({
      url,
      token: () => 'token',
      hello: async () => ({ agentVersion: 't', hostName: 'h', labels: {}, capacity: { cpus: 1, memoryMb: 1 } }),
      onDesired() {},
      onDisconnected() {},
      onUnauthorized() {},
      log: quiet,
      ...over,
    });
    cleanup.push(() => conn.stop());
    return conn;
  }

  it('hands invoke and cancel frames to their callbacks', async () => {
    const srv = await fakeServer();
    cleanup.push(srv.close);
    const invoked: InvocationRequest[] = [];
    const cancelled: string[] = [];
    connect(srv.url, { onInvoke: (r) => invoked.push(r), onCancel: (id) => cancelled.push(id) }).start();
    await waitFor(() => srv.frames.some((f) => f.type === 'hello'));
    const invocation: InvocationRequest = {
      id: 'inv-1',
      tool: 'echo',
      version: 2,
      spec: ToolSpecSchema.parse({ image: 'machete/busybox:test' }),
      args: ['a b', '$HOME'],
      stdin: 'in',
      timeoutSeconds: 5,
      maxOutputBytes: 1024,
    };
    srv.sockets[0]!.send(JSON.stringify({ type: 'invoke', invocation }));
    srv.sockets[0]!.send(JSON.stringify({ type: 'invoke', invocation: { ...invocation, args: ['nul\0'] } })); // refused by the schema
    srv.sockets[0]!.send(JSON.stringify({ type: 'cancel', id: 'inv-1' }));
    await waitFor(() => cancelled.length === 1);
    expect(invoked).toEqual([invocation]);
    expect(cancelled).toEqual(['inv-1']);
  });

  it('sends a result at once while connected, after the hello', async () => {
    const srv = await fakeServer();
    cleanup.push(srv.close);
    const conn = connect(srv.url);
    conn.start();
    await waitFor(() => srv.frames.some((f) => f.type === 'hello'));
    expect(conn.sendInvocationResult(result('r1'))).toBe(true);
    await waitFor(() => srv.frames.some((f) => f.type === 'invocationResult'));
    expect(srv.frames.find((f) => f.type === 'invocationResult')).toEqual({ type: 'invocationResult', result: result('r1') });
  });

  it('keeps results while disconnected and sends them, in order, right after the next hello', async () => {
    const srv = await fakeServer();
    cleanup.push(srv.close);
    const conn = connect(srv.url);
    expect(conn.sendInvocationResult(result('early-1'))).toBe(false);
    expect(conn.sendInvocationResult(result('early-2'))).toBe(false);
    conn.start();
    await waitFor(() => srv.frames.filter((f) => f.type === 'invocationResult').length === 2);
    expect(srv.frames.map((f) => (f.type === 'invocationResult' ? (f.result as InvocationResult).id : f.type)).slice(0, 3)).toEqual([
      'hello',
      'early-1',
      'early-2',
    ]);

    // The server goes away: results wait for the reconnect.
    srv.sockets[0]!.terminate();
    await waitFor(() => !conn.connected);
    expect(conn.sendInvocationResult(result('while-down'))).toBe(false);
    await waitFor(() => srv.sockets.length === 2 && srv.frames.some((f) => f.type === 'invocationResult' && (f.result as InvocationResult).id === 'while-down'), 10_000);
  });

  it('holds at most 1,000 results, dropping the oldest', async () => {
    const srv = await fakeServer();
    cleanup.push(srv.close);
    const conn = connect(srv.url);
    for (let i = 0; i < 1_005; i++) conn.sendInvocationResult(result(`r${i}`));
    conn.start();
    await waitFor(() => srv.frames.filter((f) => f.type === 'invocationResult').length === 1_000);
    const ids = srv.frames.filter((f) => f.type === 'invocationResult').map((f) => (f.result as InvocationResult).id);
    expect(ids[0]).toBe('r5');
    expect(ids.at(-1)).toBe('r1004');
  });
});
