import { z } from '@hono/zod-openapi';
import { SecretBody, SecretSchema } from './routes/secrets.ts';
import {
  AuditResultSchema,
  DeploymentBody,
  DeploymentSchema,
  EventSchema,
  HostPatchBody,
  HostSchema,
  InstanceSchema,
  InvocationSchema,
  InvokeBody,
  IssuedTokenSchema,
  JoinTokenBody,
  JoinTokenSchema,
  TokenBody,
  ToolSchema,
  ToolSpecBody,
} from './schemas.ts';

/**
 * The user-facing routes of /api/v1 as the CLI and the dashboard see them: per route its query
 * keys, JSON body and JSON answer by status, or `stream` for server-sent events. The clients
 * `import type` this table and can call nothing else; contract.test.ts checks it against the
 * routes the app really registers (paths, methods, query keys, the very same schemas), both ways.
 * A renamed route or field therefore fails `npm run typecheck` in a client or that test.
 */
export const routes = {
  'GET /tools': { responses: { 200: z.array(ToolSchema) } },
  'GET /tools/{name}': { responses: { 200: ToolSchema } },
  'PUT /tools/{name}': { body: ToolSpecBody, responses: { 200: ToolSchema, 201: ToolSchema } },
  'DELETE /tools/{name}': { responses: { 204: null } },
  'GET /tools/{name}/deployment': { responses: { 200: DeploymentSchema } },
  'PUT /tools/{name}/deployment': { body: DeploymentBody, responses: { 200: DeploymentSchema } },
  'POST /tools/{name}/invoke': { body: InvokeBody, responses: { 200: InvocationSchema, 202: z.object({ id: z.string() }) } },
  'GET /invocations/{id}': { responses: { 200: InvocationSchema } },
  'DELETE /invocations/{id}': { responses: { 200: InvocationSchema } },
  'GET /invocations/{id}/logs': { query: ['follow', 'tail', 'since'], stream: true },
  'GET /instances': { query: ['tool', 'host'], responses: { 200: z.array(InstanceSchema) } },
  'GET /instances/{id}/logs': { query: ['follow', 'tail', 'since'], stream: true },
  'GET /hosts': { responses: { 200: z.array(HostSchema) } },
  'GET /hosts/{id}': { responses: { 200: HostSchema } },
  'PATCH /hosts/{id}': { body: HostPatchBody, responses: { 200: HostSchema } },
  'DELETE /hosts/{id}': { responses: { 204: null } },
  'POST /hosts/{id}/drain': { responses: { 200: HostSchema } },
  'POST /hosts/join-tokens': { body: JoinTokenBody, responses: { 201: JoinTokenSchema } },
  'POST /tokens': { body: TokenBody, responses: { 201: IssuedTokenSchema } },
  'DELETE /tokens/{id}': { responses: { 204: null } },
  'GET /secrets': { responses: { 200: z.array(SecretSchema) } },
  'PUT /secrets/{name}': { body: SecretBody, responses: { 200: SecretSchema, 201: SecretSchema } },
  'DELETE /secrets/{name}': { responses: { 204: null } },
  'GET /events': { query: ['follow', 'after', 'limit'], responses: { 200: z.array(EventSchema) }, stream: true },
  'POST /audit': { responses: { 200: AuditResultSchema } },
} as const satisfies Record<string, RouteContract>;

/** Routes only agents call (their own tokens and protocol): no client of this table may. */
export const AGENT_ONLY_ROUTES = ['POST /agent/enroll', 'POST /agent/renew', 'GET /agent/connect'] as const;

export interface RouteContract {
  query?: readonly string[];
  body?: z.ZodType;
  /** JSON answers by success status; `null` for an empty one (204). */
  responses?: Readonly<Record<number, z.ZodType | null>>;
  /** Also (or only) answers with text/event-stream. */
  stream?: true;
}

export type Routes = typeof routes;
export type RouteKey = keyof Routes;
/** The routes that answer JSON (`call`), and those that stream (`stream`). */
export type JsonRoute = { [K in RouteKey]: Routes[K] extends { responses: object } ? K : never }[RouteKey];
export type StreamRoute = { [K in RouteKey]: Routes[K] extends { stream: true } ? K : never }[RouteKey];

/** `'GET /tools/{name}/deployment'` → `{ name: string }`. */
type ParamNames<P extends string> = P extends `${string}{${infer N}}${infer Rest}` ? N | ParamNames<Rest> : never;
type PathOf<K extends string> = K extends `${string} ${infer P}` ? P : never;
type Params<K extends RouteKey> = [ParamNames<PathOf<K>>] extends [never] ? { params?: undefined } : { params: Record<ParamNames<PathOf<K>>, string> };
type Query<K extends RouteKey> = Routes[K] extends { query: readonly (infer Q extends string)[] } ? { query?: Partial<Record<Q, string | number | boolean | undefined>> } : { query?: undefined };
type Body<K extends RouteKey> = Routes[K] extends { body: infer B extends z.ZodType } ? { body: z.input<B> } : { body?: undefined };

/** What a client passes to call a route: its path parameters, query and body, each only where the route has one. */
export type RouteArgs<K extends RouteKey> = Params<K> & Query<K> & Body<K>;

/** The JSON answer of a route: the union over its success statuses (`undefined` for 204). */
export type RouteAnswer<K extends JsonRoute> = {
  [S in keyof Routes[K]['responses']]: Routes[K]['responses'][S] extends z.ZodType ? z.output<Routes[K]['responses'][S]> : undefined;
}[keyof Routes[K]['responses']];
