import { z } from '@hono/zod-openapi';
import { ContainerAuditSchema, INSTANCE_STATES, LabelMapSchema, TOOL_NAME_RE, ToolSpecSchema } from '../../../../protocol/src/index.ts';
import { ROLES } from '../auth/tokens.ts';

export const ErrorSchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

export const errorResponses = (...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 429 | 503)[]) =>
  Object.fromEntries(statuses.map((s) => [s, { description: DESCRIPTIONS[s], content: { 'application/json': { schema: ErrorSchema } } }]));
const DESCRIPTIONS = { 400: 'Invalid input (the field is named)', 401: 'Missing or invalid token', 403: 'Role not allowed', 404: 'Not found', 409: 'Conflict', 413: 'Body too large', 429: 'Rate limited', 503: 'Unavailable' };

export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
export const jsonBody = <T extends z.ZodType>(schema: T) => ({ required: true, content: { 'application/json': { schema } } });

// Schemas from protocol/ may predate the .openapi() extension; wrap them in fresh ones here.
export const ToolNameParam = z.object({ name: z.string().max(63).regex(TOOL_NAME_RE, 'invalid tool name').openapi({ param: { name: 'name', in: 'path' }, example: 'hello' }) });
export const IdParam = z.object({ id: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/).openapi({ param: { name: 'id', in: 'path' } }) });

export const ToolSpecBody = z.strictObject(ToolSpecSchema.shape).openapi('ToolSpec', {
  example: { image: 'machete/busybox:test', command: ['sleep', '3600'], resources: { cpus: 0.5, memoryMb: 256, pids: 128 } },
});
export const ToolSchema = z
  .object({ name: z.string(), version: z.number().int(), spec: ToolSpecSchema, createdAt: z.string(), updatedAt: z.string() })
  .openapi('Tool');

export const InstanceSchema = z
  .object({
    id: z.string(),
    tool: z.string(),
    version: z.number().int(),
    runningVersion: z.number().int().nullable(),
    kind: z.string(),
    hostId: z.string().nullable(),
    desired: z.string(),
    state: z.enum(INSTANCE_STATES),
    containerId: z.string().nullable(),
    exitCode: z.number().int().nullable(),
    restarts: z.number().int(),
    reason: z.string().nullable(),
    health: z.enum(['none', 'starting', 'healthy', 'unhealthy']).nullable().openapi({ description: "The container's health check as its engine reports it; null until reported" }),
    crashLoop: z.boolean().openapi({ description: 'Failing again and again under restart: on-failure; restarts wait a growing backoff' }),
    backoffSeconds: z.number().int().nullable().openapi({ description: 'While crash-looping: the wait before the next restart (doubles per restart, up to 60 s)' }),
    lastExitCode: z.number().int().nullable().openapi({ description: 'Exit code of the last container of this instance that was restarted' }),
    updatedAt: z.string(),
  })
  .openapi('Instance');

export const DeploymentBody = z
  .strictObject({ replicas: z.number().int().min(0).max(10_000), version: z.number().int().min(1).nullable().optional() })
  .openapi('DeploymentRequest', { example: { replicas: 3 } });
export const DeploymentSchema = z
  .object({
    tool: z.string(),
    replicas: z.number().int(),
    version: z.number().int().nullable(),
    running: z.number().int(),
    rollout: z
      .object({
        state: z.enum(['progressing', 'complete', 'rolled_back']).nullable(),
        from: z.number().int().nullable(),
        to: z.number().int().nullable(),
        stableVersion: z.number().int().nullable().openapi({ description: 'The last version every replica ran ready at once: where a failed rollout returns' }),
        reason: z.string().nullable().openapi({ description: 'Why the rollout was rolled back' }),
        startedAt: z.string().nullable(),
      })
      .nullable()
      .openapi({ description: 'The latest rolling update (one replica at a time; rolled back when the new version fails); null before the first' }),
    instances: z.array(InstanceSchema),
  })
  .openapi('Deployment');

const Usage = z.object({ cpus: z.number(), memoryMb: z.number() });
export const HostSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    labels: z.record(z.string(), z.string()),
    status: z.enum(['ready', 'down', 'draining']),
    schedulable: z.boolean(),
    lastSeenAt: z.string().nullable(),
    capacity: Usage,
    allocated: Usage.extend({ instances: z.number().int() }),
  })
  .openapi('Host');
export const HostPatchBody = z.strictObject({ labels: LabelMapSchema.optional(), schedulable: z.boolean().optional() }).openapi('HostPatch');

export const TokenBody = z
  .strictObject({
    role: z.enum(ROLES),
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9 _.@-]+$/).optional(),
    ttlSeconds: z.number().int().min(60).max(10 * 365 * 86_400).optional(),
  })
  .openapi('TokenRequest', { example: { role: 'operator', name: 'ci', ttlSeconds: 86_400 } });
export const IssuedTokenSchema = z.object({ id: z.string(), token: z.string(), expiresAt: z.string() }).openapi('IssuedToken');
export const JoinTokenBody = z
  .strictObject({
    ttlSeconds: z.number().int().min(60).max(365 * 86_400).optional(),
    labels: LabelMapSchema.optional(),
    singleUse: z.boolean().optional().openapi({ description: 'good for one enrollment only (refused once a host enrolled with it)' }),
  })
  .openapi('JoinTokenRequest');
export const JoinTokenSchema = z.object({ token: z.string(), expiresAt: z.string(), singleUse: z.boolean() }).openapi('JoinToken');
export const EnrollBody = z
  .strictObject({ hostName: z.string().min(1).max(253).regex(/^[A-Za-z0-9._-]+$/), labels: LabelMapSchema.optional() })
  .openapi('EnrollRequest');
export const EnrollSchema = z.object({ hostId: z.string(), token: z.string(), expiresAt: z.string() }).openapi('Enrollment');

export const EventSchema = z
  .object({
    id: z.number().int(),
    at: z.string(),
    kind: z.string(),
    actor: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    outcome: z.string(),
    reason: z.string().nullable(),
    data: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('Event');

export const InvokeBody = z
  .strictObject({
    args: z.array(z.string().max(32_768).refine((s) => !s.includes('\0'), 'must not contain NUL')).max(256).optional(),
    stdin: z.string().max(1024 * 1024).optional(),
    env: ToolSpecSchema.shape.env.optional(),
    timeoutSeconds: z.number().int().min(1).max(86_400).optional(),
    wait: z.boolean().optional(),
  })
  .openapi('InvokeRequest', { example: { args: ['--name', 'world'], stdin: 'hello', wait: true } });
export const InvocationSchema = z
  .object({
    id: z.string(),
    tool: z.string(),
    version: z.number().int(),
    status: z.enum(['running', 'succeeded', 'failed', 'timeout', 'cancelled']),
    exitCode: z.number().int().nullable(),
    stdout: z.string(),
    stderr: z.string(),
    truncated: z.boolean(),
    durationMs: z.number().int().nullable(),
    hostId: z.string().nullable(),
    reason: z.string().nullable(),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi('Invocation');

/** One host's part of a live audit: every container its engine holds, with the findings of each. */
export const HostAuditSchema = z
  .object({
    hostId: z.string(),
    name: z.string(),
    status: z.enum(['ok', 'error', 'timeout']).openapi({ description: '`error`: the agent reported a failure or could not be asked; `timeout`: no report in time' }),
    error: z.string().optional(),
    containers: z.array(ContainerAuditSchema),
  })
  .openapi('HostAudit');
export const AuditResultSchema = z
  .object({ hosts: z.array(HostAuditSchema), findings: z.number().int().openapi({ description: 'findings over every container of every host' }) })
  .openapi('AuditResult');
