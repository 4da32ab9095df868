import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import type { LogHandle, LogOptions, LogSink } from './port.ts';
import { createDemuxer } from './run.ts';

/** How long the engine gets to answer with the response headers; the body then lasts as long as the container. */
const HEADERS_TIMEOUT_MS = 30_000;

/** Query of GET /containers/{id}/logs: only set values, so the engine's defaults hold otherwise. */
export function logsQuery(opts: LogOptions): Record<string, string | number> {
  return {
    stdout: 1,
    stderr: 1,
    follow: opts.follow ? 1 : 0,
    ...(opts.tail !== null ? { tail: opts.tail } : {}),
    ...(opts.since !== null ? { since: opts.since } : {}),
  };
}

/**
 * GET /containers/{id}/logs as a raw stream (json-file driver, Tty false so the body is multiplexed).
 * dockerode's container.logs() buffers the whole log when not following, so the request is dialled
 * directly with isStream. pause/resume act on the HTTP response, so a paused reader makes TCP push
 * back on the engine; close destroys it, which ends the engine's follow.
 */
export function streamLogs(docker: Docker, id: string, opts: LogOptions, sink: LogSink): LogHandle {
  const abort = new AbortController();
  const headersTimer = setTimeout(() => abort.abort(new Error('engine did not answer in time')), HEADERS_TIMEOUT_MS);
  let res: IncomingMessage | null = null;
  let paused = false;
  let done = false;
  const finish = (err: Error | null) => {
    if (done) return;
    done = true;
    clearTimeout(headersTimer);
    res?.destroy();
    sink.end(err);
  };
  const dialOpts = {
    path: `/containers/${id}/logs?`,
    method: 'GET',
    isStream: true,
    abortSignal: abort.signal,
    statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
    options: { _query: logsQuery(opts) },
  };
  (docker.modem as { dial(o: unknown, cb: (e: Error | null, r: IncomingMessage) => void): void }).dial(dialOpts, (e, r) => {
    clearTimeout(headersTimer);
    if (e) return finish(e);
    if (done) return void r.destroy();
    res = r;
    const demux = createDemuxer((b) => sink.data('stdout', b), (b) => sink.data('stderr', b));
    r.on('data', (chunk: Buffer) => !done && demux(chunk));
    r.on('end', () => finish(null));
    r.on('error', (err) => finish(err));
    // A close without 'end' (engine went away, or our own destroy) ends the stream too.
    r.on('close', () => finish(r.readableEnded ? null : new Error('engine log stream closed')));
    if (paused) r.pause();
  });
  return {
    pause() {
      paused = true;
      res?.pause();
    },
    resume() {
      paused = false;
      res?.resume();
    },
    close() {
      abort.abort();
      finish(null);
    },
  };
}
