import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { ErrorSchema } from './schemas.ts';

// The parts of the OpenAPI document that are not a zod-validated /api/v1 route: the operational
// routes outside /api/v1, the security schemes, and an example for every named schema. The
// examples are checked against the same zod schemas in openapi.test.ts, so they cannot drift.

export const HealthSchema = z
  .object({
    status: z.literal('healthy'),
    version: z.string(),
    connectedAgents: z.number().int().openapi({ description: 'agents connected to this replica' }),
    leader: z.boolean().optional().openapi({ description: 'whether this replica holds the scheduler/housekeeping lock' }),
    time: z.string(),
  })
  .openapi('Health', { example: { status: 'healthy', version: '0.1.0', connectedAgents: 2, leader: true, time: '2026-01-05T10:00:00.000Z' } });

export const ReadySchema = z
  .object({ status: z.enum(['ready', 'not_ready']), reason: z.string().optional() })
  .openapi('Ready', { example: { status: 'ready' } });

const ts = '2026-01-05T10:00:00.000Z';
const instance = {
  id: 'i_8f2c1d0a', tool: 'hello', version: 2, runningVersion: 2, kind: 'replica', hostId: 'h_3b9e', desired: 'running', state: 'running',
  containerId: '4f1c0e9d2b7a', exitCode: null, restarts: 0, reason: null, health: 'healthy', crashLoop: false, backoffSeconds: null, lastExitCode: null, updatedAt: ts,
};
const tool = {
  name: 'hello', version: 2, createdAt: ts, updatedAt: ts,
  spec: { image: 'machete/busybox:test', command: ['sh', '-c', 'echo hi'], env: {}, secrets: [], mounts: [], resources: { cpus: 0.5, memoryMb: 256, pids: 128 }, network: 'none', user: '65534:65534', timeoutSeconds: 60, restart: 'on-failure', placement: { labels: {} }, warm: 0 },
};

/** One example per component that has none of its own, by component name. */
export const COMPONENT_EXAMPLES: Record<string, unknown> = {
  Error: { error: { code: 'not_found', message: 'no tool named hello' } },
  Tool: tool,
  Instance: instance,
  Deployment: {
    tool: 'hello', replicas: 2, version: 2, running: 2, instances: [instance, { ...instance, id: 'i_77ad03e1', hostId: 'h_51c0' }],
    rollout: { state: 'complete', from: 1, to: 2, stableVersion: 2, reason: null, startedAt: ts },
  },
  Host: {
    id: 'h_3b9e', name: 'node-1', labels: { zone: 'a' }, status: 'ready', schedulable: true, lastSeenAt: ts,
    capacity: { cpus: 4, memoryMb: 8192 }, allocated: { cpus: 1, memoryMb: 512, instances: 2 },
  },
  HostPatch: { labels: { zone: 'b' }, schedulable: false },
  IssuedToken: { id: 't_5d1e9a', token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6Im1hY2hldGUrand0In0.e30.c2lnbmF0dXJl', expiresAt: ts },
  JoinTokenRequest: { ttlSeconds: 3600, labels: { zone: 'a' }, singleUse: true },
  JoinToken: { token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6Im1hY2hldGUtam9pbitqd3QifQ.e30.c2lnbmF0dXJl', expiresAt: ts, singleUse: true },
  EnrollRequest: { hostName: 'node-1', labels: { zone: 'a' } },
  Enrollment: { hostId: 'h_3b9e', token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6Im1hY2hldGUtYWdlbnQrand0In0.e30.c2lnbmF0dXJl', expiresAt: ts },
  Secret: { name: 'api-key', version: 1, sizeBytes: 6, createdAt: ts, updatedAt: ts },
  Event: { id: 42, at: ts, kind: 'audit', actor: 'token:t_5d1e9a', action: 'tool.put', target: 'hello', outcome: 'ok', reason: null, data: { version: 2 } },
  Invocation: {
    id: 'v_0c4d7e', tool: 'hello', version: 2, status: 'succeeded', exitCode: 0, stdout: 'hi\n', stderr: '', truncated: false,
    durationMs: 412, hostId: 'h_3b9e', reason: null, createdAt: ts, finishedAt: ts,
  },
  HostAudit: { hostId: 'h_3b9e', name: 'node-1', status: 'ok', containers: [] },
  AuditResult: { hosts: [{ hostId: 'h_3b9e', name: 'node-1', status: 'ok', containers: [] }], findings: 0 },
};

const text = (description: string, example: string) => ({ description, content: { 'text/plain': { schema: z.string().openapi({ example }) } } });

/** Documents the routes outside /api/v1 that plain Hono handlers serve (no validation to share). */
export function documentOperationalRoutes(app: OpenAPIHono): void {
  const r = app.openAPIRegistry;
  r.registerComponent('securitySchemes', 'scrape', { type: 'http', scheme: 'bearer', description: 'The Prometheus scrape token (MACHETE_METRICS_TOKEN_FILE)' });
  r.registerPath({
    method: 'get', path: '/api/health', tags: ['operations'], security: [], summary: 'Liveness: answers while the process serves HTTP',
    responses: { 200: { description: 'Healthy', content: { 'application/json': { schema: HealthSchema } } } },
  });
  r.registerPath({
    method: 'get', path: '/api/ready', tags: ['operations'], security: [], summary: 'Readiness: the database answers and every migration is applied',
    responses: {
      200: { description: 'Ready', content: { 'application/json': { schema: ReadySchema } } },
      503: { description: 'Not ready, with the reason', content: { 'application/json': { schema: ReadySchema, example: { status: 'not_ready', reason: 'database unreachable' } } } },
    },
  });
  r.registerPath({
    method: 'get', path: '/metrics', tags: ['operations'], summary: 'Prometheus metrics (text exposition format)',
    description: 'Open unless configured otherwise; then the scrape token or an admin token is required.',
    // Either no credentials (open), the scrape token, or an admin user token.
    security: [{}, { scrape: [] }, { bearer: [] }],
    responses: {
      200: text('Prometheus text', '# TYPE machete_connected_agents gauge\nmachete_connected_agents 2\n'),
      401: { description: 'Missing or invalid token (when not open)', content: { 'application/json': { schema: ErrorSchema } } },
      403: { description: 'A user token that is not admin', content: { 'application/json': { schema: ErrorSchema } } },
    },
  });
  r.registerPath({
    method: 'get', path: '/api/openapi.json', tags: ['operations'], security: [], summary: 'This document (OpenAPI 3.1)',
    responses: { 200: { description: 'The OpenAPI document', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
  });
  r.registerPath({
    method: 'get', path: '/api/docs', tags: ['operations'], security: [], summary: 'Interactive documentation of this document',
    responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: z.string() } } } },
  });
}

/** Answers whose schema is inline (no component to hold an example): `method path status` → example. */
export const ANSWER_EXAMPLES: Record<string, unknown> = {
  'post /api/v1/tools/{name}/invoke 202': { id: 'v_0c4d7e' },
};

type Answers = Record<string, { content?: Record<string, { example?: unknown }> }>;
type DocLike = { components?: { schemas?: Record<string, object> }; paths?: Record<string, Record<string, { responses?: Answers } | undefined> | undefined> };

/** Adds the examples above where the document has none (a schema's own example wins). */
export function withExamples<T extends object>(document: T): T {
  const doc = document as DocLike;
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
    const s = schema as { example?: unknown; examples?: unknown };
    if (s.example === undefined && s.examples === undefined && name in COMPONENT_EXAMPLES) s.example = COMPONENT_EXAMPLES[name];
  }
  for (const [key, example] of Object.entries(ANSWER_EXAMPLES)) {
    const [method, path, status] = key.split(' ') as [string, string, string];
    const media = doc.paths?.[path]?.[method]?.responses?.[status]?.content?.['application/json'];
    if (media && media.example === undefined) media.example = example;
  }
  return document;
}
