import type { z } from 'zod';
import type {
  AuditResultSchema,
  DeploymentBody,
  DeploymentSchema,
  EventSchema,
  HostPatchBody,
  HostSchema,
  InstanceSchema,
  InvocationSchema,
  IssuedTokenSchema,
  JoinTokenBody,
  JoinTokenSchema,
  TokenBody,
  ToolSchema,
  ToolSpecBody,
} from '../../api/src/http/schemas.ts';
import type { JsonRoute, RouteAnswer, RouteArgs, RouteKey, StreamRoute } from '../../api/src/http/contract.ts';
import { clean, CliError, sleep } from './io.ts';

// Wire types come from the very zod schemas the API validates and documents with,
// imported as types only: a renamed field breaks `tsc`, not a user at a terminal.
export type Tool = z.infer<typeof ToolSchema>;
export type Deployment = z.infer<typeof DeploymentSchema>;
export type Instance = z.infer<typeof InstanceSchema>;
export type Invocation = z.infer<typeof InvocationSchema>;
export type Host = z.infer<typeof HostSchema>;
export type ApiEvent = z.infer<typeof EventSchema>;
export type IssuedToken = z.infer<typeof IssuedTokenSchema>;
export type JoinToken = z.infer<typeof JoinTokenSchema>;
export type TokenRequest = z.input<typeof TokenBody>;
export type JoinTokenRequest = z.input<typeof JoinTokenBody>;
export type DeploymentRequest = z.input<typeof DeploymentBody>;
export type HostPatch = z.input<typeof HostPatchBody>;
export type AuditResult = z.infer<typeof AuditResultSchema>;
export type ToolSpecInput = z.input<typeof ToolSpecBody>;

const REQUEST_TIMEOUT_MS = 30_000;
const RATE_LIMIT_RETRIES = 3;

/** A non-2xx answer; `message` is already the one line the user sees. */
export class ApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  server: string;
  token: string | null;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** The CLI's client of the MACHETE API: typed routes, bearer auth, one readable error line per failure. */
export class ApiClient {
  readonly server: string;
  private readonly token: string | null;
  private readonly signal: AbortSignal | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: ClientOptions) {
    this.server = opts.server;
    this.token = opts.token;
    this.signal = opts.signal;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  /**
   * Calls one route of the API's route table with its path parameters, query and body, and
   * answers with the JSON the route's schema promises. Routes and shapes come from the server's
   * contract (`import type` only): no path is ever spelled here by hand.
   */
  call<K extends JsonRoute>(route: K, ...[args]: ArgsOf<K>): Promise<RouteAnswer<K>> {
    const [method, path] = resolve(route, args);
    return this.json<RouteAnswer<K>>(method, path, args?.body);
  }

  /** Like `call`, but a 404 is `null` rather than an error. */
  async find<K extends JsonRoute>(route: K, ...rest: ArgsOf<K>): Promise<RouteAnswer<K> | null> {
    try {
      return await this.call(route, ...rest);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  /** Sends a request and returns the JSON answer (`undefined` for an empty body). */
  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body, AbortSignal.timeout(REQUEST_TIMEOUT_MS));
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${method} ${path}: the server answered ${res.status} with a body that is not JSON`);
    }
  }

  /** Opens a streaming GET (server-sent events); the caller reads `body` until it ends or the signal aborts. */
  async stream<K extends StreamRoute>(route: K, ...[args]: ArgsOf<K>): Promise<ReadableStream<Uint8Array>> {
    const [, path] = resolve(route, args);
    const res = await this.send('GET', path, undefined, undefined, 'text/event-stream');
    if (!res.body) throw new CliError(`GET ${path}: the server sent no stream`);
    return res.body;
  }

  private async send(method: string, path: string, body: unknown, timeout?: AbortSignal, accept = 'application/json', attempt = 0): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signals = [this.signal, timeout].filter((s): s is AbortSignal => !!s);
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.server}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signals.length ? { signal: AbortSignal.any(signals) } : {}),
      });
    } catch (err) {
      if (this.signal?.aborted) throw err;
      if (timeout?.aborted) throw new CliError(`${method} ${path}: no answer from ${this.server} within ${REQUEST_TIMEOUT_MS / 1000}s`);
      throw new CliError(`cannot reach ${this.server}: ${networkReason(err)}`);
    }
    if (res.status === 429 && method === 'GET' && attempt < RATE_LIMIT_RETRIES) {
      // Reads are safe to repeat: wait as long as the server asks (bounded), then try again.
      await res.body?.cancel();
      const wait = Math.min(Math.max(Number(res.headers.get('retry-after')) || 1, 0.1), 5);
      await sleep(wait * 1000, this.signal);
      return this.send(method, path, body, timeout, accept, attempt + 1);
    }
    if (!res.ok) throw await apiError(res);
    return res;
  }
}

/** Arguments may be left out where a route has no path parameter or body to give. */
type ArgsOf<K extends RouteKey> = object extends RouteArgs<K> ? [args?: RouteArgs<K>] : [args: RouteArgs<K>];

/** `'GET /tools/{name}'` with `{params: {name: 'a b'}}` → `['GET', '/api/v1/tools/a%20b']`, plus the query. */
export function resolve(route: RouteKey, args: { params?: Record<string, string>; query?: Record<string, string | number | boolean | undefined> } = {}): [string, string] {
  const [method, template] = route.split(' ') as [string, string];
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = args.params?.[name];
    if (v === undefined) throw new CliError(`${route}: missing ${name}`);
    return encodeURIComponent(v);
  });
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(args.query ?? {})) if (v !== undefined) q.set(k, String(v));
  const qs = q.toString();
  return [method, `/api/v1${path}${qs ? `?${qs}` : ''}`];
}

/** `{"error":{"code","message"}}` → "message (404 not_found)"; anything else → the status line. */
async function apiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let code = `http_${res.status}`;
  let message = `the server answered ${res.status} ${res.statusText}`.trim();
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error;
    if (e && typeof e.code === 'string') code = e.code;
    if (e && typeof e.message === 'string' && e.message) message = e.message + moreIssues(e.details);
  } catch {
    // not our error shape (a proxy, a wrong URL): the status line says enough
  }
  const hint = res.status === 401 ? ' — run machete login, or set MACHETE_TOKEN' : '';
  return new ApiError(`${oneLine(message)} (${res.status} ${code})${hint}`, res.status, code);
}

/** A 400 names its first issue in `message`; the others (up to 10) are in `details.issues`. */
function moreIssues(details: unknown): string {
  const issues = (details as { issues?: unknown } | null)?.issues;
  if (!Array.isArray(issues) || issues.length < 2) return '';
  const rest = issues
    .slice(1, 4)
    .map((i: { path?: unknown; message?: unknown }) => `${typeof i.path === 'string' && i.path ? `${i.path}: ` : ''}${String(i.message)}`);
  const more = issues.length > 4 ? `, and ${issues.length - 4} more` : '';
  return `; also ${rest.join('; ')}${more}`;
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  const m = cause?.message || cause?.code || (err as Error)?.message || String(err);
  return oneLine(m);
}

const oneLine = (s: string) => clean(s).replace(/\s+/g, ' ').trim().slice(0, 500);
