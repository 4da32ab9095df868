import { z } from 'zod';
import { ContainerAuditSchema } from './containerAudit.ts';
import { INSTANCE_KINDS } from './labels.ts';
import { LabelMapSchema, MAX_SECRET_VALUE_BYTES, SECRET_NAME_RE, ToolNameSchema, ToolSpecSchema } from './toolSpec.ts';

/** Largest frame either side accepts; larger frames close the connection (1009). */
// Sized for an invocation result: two 1 MiB outputs, JSON-escaped in the worst case.
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

const Id = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);
const Revision = z.number().int().min(0);

export const INSTANCE_STATES = ['pending', 'starting', 'running', 'exited', 'failed', 'lost'] as const;
export const InstanceStateSchema = z.enum(INSTANCE_STATES);
export type InstanceState = z.infer<typeof InstanceStateSchema>;

/**
 * The value of one secret the instance's spec names. Sent only to the host that runs the
 * instance; `version` changes with the value, so the agent can tell a rotation without hashing values.
 */
export const SecretValueSchema = z.strictObject({
  name: z.string().regex(SECRET_NAME_RE),
  value: z.string().max(MAX_SECRET_VALUE_BYTES),
  version: z.number().int().min(1),
});
export type SecretValue = z.infer<typeof SecretValueSchema>;
const SecretValues = z.array(SecretValueSchema).max(64).optional();

/** One instance as the control plane wants it to be on a host. */
export const DesiredInstanceSchema = z.strictObject({
  id: Id,
  tool: ToolNameSchema,
  version: z.number().int().min(1),
  kind: z.enum(INSTANCE_KINDS),
  revision: Revision,
  desired: z.enum(['running', 'stopped']),
  spec: ToolSpecSchema,
  /** Values of `spec.secrets`, nothing more (absent: the spec names none). */
  secrets: SecretValues,
});
export type DesiredInstance = z.infer<typeof DesiredInstanceSchema>;

/** A replica's health as its engine reports it; `none`: the container has no health check (or is not running). */
export const HEALTH_STATES = ['none', 'starting', 'healthy', 'unhealthy'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

export const InstanceStatusSchema = z.strictObject({
  id: Id,
  state: InstanceStateSchema,
  containerId: z.string().max(128).nullable(),
  exitCode: z.number().int().nullable(),
  restarts: z.number().int().min(0),
  reason: z.string().max(1024).nullable(),
  /** Tool version of the container now serving the instance. */
  version: z.number().int().min(0).nullable(),
  // Optional so agents that predate them still speak the protocol; absent reads as none/false/null.
  health: z.enum(HEALTH_STATES).optional(),
  /** Failing again and again under its restart policy: restarts are held back by a growing backoff. */
  crashLoop: z.boolean().optional(),
  /** The backoff before the next restart while crash-looping, in seconds. */
  backoffSeconds: z.number().int().min(0).max(86_400).nullable().optional(),
  /** Exit code of the last container of this instance that exited and was restarted. */
  lastExitCode: z.number().int().nullable().optional(),
});
export type InstanceStatus = z.infer<typeof InstanceStatusSchema>;

export const INVOCATION_STATUSES = ['succeeded', 'failed', 'timeout', 'cancelled'] as const;
export type InvocationStatus = (typeof INVOCATION_STATUSES)[number];

/** One run-once request for an agent. `args` are appended to the command as an argument array. */
export const InvocationRequestSchema = z.strictObject({
  id: Id,
  tool: ToolNameSchema,
  version: z.number().int().min(1),
  spec: ToolSpecSchema,
  args: z.array(z.string().max(32_768).refine((s) => !s.includes('\0'), 'must not contain NUL')).max(256),
  /** Written to the process's stdin, then closed; null: stdin is closed at once. */
  stdin: z.string().max(1024 * 1024).nullable(),
  timeoutSeconds: z.number().int().min(1).max(86_400),
  /** Cap per stream; past it output is discarded and `truncated` is set. */
  maxOutputBytes: z.number().int().min(1).max(64 * 1024 * 1024),
  /** Values of `spec.secrets`, nothing more. */
  secrets: SecretValues,
});
export type InvocationRequest = z.infer<typeof InvocationRequestSchema>;

export const InvocationResultSchema = z.strictObject({
  id: Id,
  status: z.enum(INVOCATION_STATUSES),
  exitCode: z.number().int().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  durationMs: z.number().int().min(0),
  containerId: z.string().max(128).nullable(),
  /** Why it failed before or outside the process (policy refusal, image missing, engine error, OOM). */
  reason: z.string().max(1024).nullable(),
});
export type InvocationResult = z.infer<typeof InvocationResultSchema>;

export const CapacitySchema = z.strictObject({
  cpus: z.number().min(0),
  memoryMb: z.number().int().min(0),
});

// ── agent → server ────────────────────────────────────────────────────────────
export const HelloFrame = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int(),
  agentVersion: z.string().max(64),
  hostName: z.string().min(1).max(253),
  labels: LabelMapSchema,
  capacity: CapacitySchema,
  /** Last revision this agent applied; 0 asks for a full snapshot. */
  lastRevision: Revision,
});
export const StatusFrame = z.strictObject({
  type: z.literal('status'),
  /** Strictly increasing per connection; older sequence numbers are ignored. */
  seq: z.number().int().min(0),
  /** Desired-state revision the agent had applied when it observed this. */
  revision: Revision,
  instances: z.array(InstanceStatusSchema).max(10_000),
});
/** Reconcile passes finished since the previous heartbeat: durations (the latest 256) and how many failed. */
export const ReconcileReportSchema = z.strictObject({
  seconds: z.array(z.number().min(0).max(86_400)).max(256),
  errors: z.number().int().min(0).max(1_000_000),
});
export type ReconcileReport = z.infer<typeof ReconcileReportSchema>;
export const HeartbeatFrame = z.strictObject({ type: z.literal('heartbeat'), at: z.number().int(), reconcile: ReconcileReportSchema.optional() });
export const InvocationResultFrame = z.strictObject({ type: z.literal('invocationResult'), result: InvocationResultSchema });

// ── log streams ───────────────────────────────────────────────────────────────
// Credit-based flow control: the server opens a stream with a window of bytes; the agent sends at
// most that much data, pausing its engine stream at zero; the server grants more (`logCredit`) only
// once its HTTP client has taken the bytes. Every hop thus holds at most one window per stream.
/** Largest `data` of one logChunk, in UTF-8 bytes. */
export const LOG_CHUNK_BYTES = 16 * 1024;
/** Default window per stream. */
export const LOG_WINDOW_BYTES = 256 * 1024;
const StreamId = z.string().regex(/^l[0-9a-f]{24}$/);
/** Output of a log stream the server opened on this host; `dropped` counts bytes lost just before `data`. */
export const LogChunkFrame = z.strictObject({
  type: z.literal('logChunk'),
  streamId: StreamId,
  stream: z.enum(['stdout', 'stderr']),
  /** UTF-8 text of at most LOG_CHUNK_BYTES bytes (invalid sequences become U+FFFD). */
  data: z.string().max(64 * 1024),
  dropped: z.number().int().min(0).optional(),
});
/** The stream is over: the container ended, the backlog was sent, or it could not be served (`code`). */
export const LogEndFrame = z.strictObject({
  type: z.literal('logEnd'),
  streamId: StreamId,
  code: z.enum(['not_found', 'busy', 'unavailable']).nullable(),
  reason: z.string().max(1024),
});

// ── live audit ────────────────────────────────────────────────────────────────
/** Containers one auditReport may carry; a host with more reports the first ones and says so in `error`. */
export const MAX_AUDIT_CONTAINERS = 5_000;
const AuditId = z.string().regex(/^a[0-9a-f]{24}$/);
/**
 * The agent's answer to an auditRequest: every container on its engine, managed or not, with
 * the findings of protocol/src/containerAudit.ts. `error` says why the list is empty or partial
 * (engine unreachable, too many containers for one frame).
 */
export const AuditReportFrame = z.strictObject({
  type: z.literal('auditReport'),
  id: AuditId,
  containers: z.array(ContainerAuditSchema).max(MAX_AUDIT_CONTAINERS),
  error: z.string().max(1024).optional(),
});
export type AuditReport = z.infer<typeof AuditReportFrame>;

export const AgentFrameSchema = z.discriminatedUnion('type', [HelloFrame, StatusFrame, HeartbeatFrame, InvocationResultFrame, LogChunkFrame, LogEndFrame, AuditReportFrame]);
export type AgentFrame = z.infer<typeof AgentFrameSchema>;
export type Hello = z.infer<typeof HelloFrame>;
export type Status = z.infer<typeof StatusFrame>;
export type LogChunk = z.infer<typeof LogChunkFrame>;
export type LogEnd = z.infer<typeof LogEndFrame>;

// ── server → agent ────────────────────────────────────────────────────────────
export const WelcomeFrame = z.strictObject({
  type: z.literal('welcome'),
  protocol: z.number().int(),
  hostId: Id,
  heartbeatMs: z.number().int().min(100),
});
/** The whole desired state of the host. */
export const SnapshotFrame = z.strictObject({
  type: z.literal('snapshot'),
  revision: Revision,
  instances: z.array(DesiredInstanceSchema),
});
/** Changes since `fromRevision`; applies only to an agent at exactly that revision. */
export const DeltaFrame = z.strictObject({
  type: z.literal('delta'),
  fromRevision: Revision,
  revision: Revision,
  upserts: z.array(DesiredInstanceSchema),
  removes: z.array(Id),
});
export const ErrorFrame = z.strictObject({
  type: z.literal('error'),
  code: z.string().max(64),
  message: z.string().max(1024),
});

/** Run a tool once; the agent answers with an invocationResult frame for the same id. */
export const InvokeFrame = z.strictObject({ type: z.literal('invoke'), invocation: InvocationRequestSchema });
/** Kill a running invocation; its result comes back with status `cancelled`. */
export const CancelFrame = z.strictObject({ type: z.literal('cancel'), id: Id });
/**
 * Open a log stream: a replica's current container (`instance`) or a running invocation's
 * captured output. The agent may send `window` bytes of data, then waits for `logCredit`.
 */
export const LogsFrame = z.strictObject({
  type: z.literal('logs'),
  streamId: StreamId,
  target: z.enum(['instance', 'invocation']),
  id: Id,
  /** The container the control plane last saw serving the instance; a hint, checked by the agent. */
  containerId: z.string().max(128).nullable(),
  follow: z.boolean(),
  /** Last N lines only (instances). */
  tail: z.number().int().min(0).max(1_000_000).nullable(),
  /** Unix seconds: only output after it (instances). */
  since: z.number().int().min(0).nullable(),
  window: z.number().int().min(1024).max(16 * 1024 * 1024),
});
/** The client consumed `bytes` more of the stream: the agent may send that much more. */
export const LogCreditFrame = z.strictObject({ type: z.literal('logCredit'), streamId: StreamId, bytes: z.number().int().min(1).max(16 * 1024 * 1024) });
/** The client went away: the agent closes the engine stream and sends nothing more for it. */
export const LogsCancelFrame = z.strictObject({ type: z.literal('logsCancel'), streamId: StreamId });

/** Inspect every container on the engine (read only); the agent answers with an auditReport for the same id. */
export const AuditRequestFrame = z.strictObject({ type: z.literal('auditRequest'), id: AuditId });

export const ServerFrameSchema = z.discriminatedUnion('type', [WelcomeFrame, SnapshotFrame, DeltaFrame, HeartbeatFrame, ErrorFrame, InvokeFrame, CancelFrame, LogsFrame, LogCreditFrame, LogsCancelFrame, AuditRequestFrame]);
export type ServerFrame = z.infer<typeof ServerFrameSchema>;
export type Snapshot = z.infer<typeof SnapshotFrame>;
export type Delta = z.infer<typeof DeltaFrame>;
export type LogsRequest = z.infer<typeof LogsFrame>;

export type FrameResult<T> = { ok: true; frame: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, raw: string): FrameResult<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: 'frame is not JSON' };
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const first = r.error.issues[0];
    return { ok: false, error: `invalid frame at ${first?.path.join('.') || '(root)'}: ${first?.message ?? 'invalid'}` };
  }
  return { ok: true, frame: r.data };
}

export const parseAgentFrame = (raw: string) => parseWith(AgentFrameSchema, raw);
export const parseServerFrame = (raw: string) => parseWith(ServerFrameSchema, raw);
