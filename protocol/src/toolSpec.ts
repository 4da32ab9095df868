import { z } from 'zod';

/** Tool names: DNS-label-like, so they are safe in container names, labels and URLs. */
export const TOOL_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const ToolNameSchema = z
  .string()
  .max(63)
  .regex(TOOL_NAME_RE, 'lowercase letters, digits and "-", 1 to 63 characters, not starting or ending with "-"');

const noNul = (s: string) => !s.includes('\0');

/** An absolute path; normalization and allowlist checks happen in policy. */
export const AbsolutePathSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(4096)
  .refine(noNul, 'must not contain NUL')
  .refine((s) => s.startsWith('/'), 'must be an absolute path')
  .refine((s) => !/[:,]/.test(s), 'must not contain ":" or ","');

// reference[:tag][@digest], conservative charset (no spaces, no shell metacharacters).
const IMAGE_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
export const ImageSchema = z.string().min(1).max(512).regex(IMAGE_RE, 'not a valid image reference');

export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const SECRET_NAME_RE = /^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$/;
/** Largest secret value, in UTF-8 bytes (it is a file under /run/secrets, not a blob store). */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;
const LABEL_KEY_RE = /^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$/;
const LABEL_VALUE_RE = /^[A-Za-z0-9_.-]{0,63}$/;

export const LabelMapSchema = z
  .record(z.string().regex(LABEL_KEY_RE, 'invalid label key'), z.string().regex(LABEL_VALUE_RE, 'invalid label value'))
  .refine((m) => Object.keys(m).length <= 32, 'at most 32 labels')
  .refine((m) => Object.keys(m).every((k) => !k.startsWith('machete.')), 'labels starting with "machete." are reserved');

export const MountSchema = z.strictObject({
  source: AbsolutePathSchema,
  target: AbsolutePathSchema,
  readOnly: z.boolean().default(true),
});

export const ResourcesSchema = z.strictObject({
  cpus: z.number().gt(0).max(64).default(0.5),
  memoryMb: z.number().int().min(6).max(1_048_576).default(256),
  pids: z.number().int().min(1).max(32_768).default(128),
});

const EnvNameSchema = z.string().regex(ENV_NAME_RE, 'invalid environment variable name');
const EnvValueSchema = z.string().max(32_768).refine(noNul, 'must not contain NUL');
const MAX_ENV_VARS = 256;
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

/**
 * Environment variables. Not a z.record: zod's record silently drops a `__proto__` key,
 * and env is plain data, so every own key is checked here and the map rebuilt with
 * Object.fromEntries (own data properties; never the prototype).
 */
export const EnvSchema = z
  .custom<Record<string, string>>(isPlainObject, { message: 'expected an object of strings' })
  .transform((input, ctx) => {
    const entries = Object.entries(input);
    if (entries.length > MAX_ENV_VARS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_ENV_VARS} variables`, input });
    for (const [name, value] of entries) {
      const n = EnvNameSchema.safeParse(name);
      const v = EnvValueSchema.safeParse(value);
      const issue = n.error?.issues[0] ?? v.error?.issues[0];
      if (issue) ctx.addIssue({ code: 'custom', path: [name], message: issue.message, input: value });
    }
    return Object.fromEntries(entries) as Record<string, string>;
  })
  .meta({ type: 'object', additionalProperties: { type: 'string', maxLength: 32_768 }, propertyNames: { pattern: ENV_NAME_RE.source }, maxProperties: MAX_ENV_VARS });

export const DEFAULT_USER = '65534:65534';

const HealthArgSchema = z.string().max(4096).refine(noNul, 'must not contain NUL');
/**
 * A replica's health check: an argv run in the container by the engine (`CMD`, never a shell
 * string). Bounds keep a check from running more than once a second or hanging for long; the
 * engine marks the container unhealthy after `retries` failures in a row.
 */
export const HealthCheckSchema = z.strictObject({
  command: z.array(HealthArgSchema).min(1).max(64).refine((a) => a[0] !== '', 'the program (command[0]) must not be empty'),
  intervalSeconds: z.number().int().min(1).max(3600).default(10),
  timeoutSeconds: z.number().int().min(1).max(300).default(5),
  retries: z.number().int().min(1).max(100).default(3),
  startPeriodSeconds: z.number().int().min(0).max(3600).default(0),
});
export type HealthCheck = z.output<typeof HealthCheckSchema>;

export const ToolSpecSchema = z.strictObject({
  image: ImageSchema,
  command: z.array(z.string().max(32_768).refine(noNul, 'must not contain NUL')).max(256).optional(),
  env: EnvSchema.default({}),
  secrets: z.array(z.string().regex(SECRET_NAME_RE, 'invalid secret name')).max(64).default([]),
  mounts: z.array(MountSchema).max(32).default([]),
  resources: ResourcesSchema.default({ cpus: 0.5, memoryMb: 256, pids: 128 }),
  network: z.enum(['none', 'isolated']).default('none'),
  user: z
    .string()
    .regex(/^[0-9]{1,10}(?::[0-9]{1,10})?$/, 'must be "uid" or "uid:gid" (numeric)')
    .refine((u) => Number(u.split(':')[0]) !== 0, 'must not be root')
    .default(DEFAULT_USER),
  workingDir: AbsolutePathSchema.optional(),
  timeoutSeconds: z.number().int().min(1).max(86_400).default(60),
  restart: z.enum(['always', 'on-failure', 'never']).default('on-failure'),
  placement: z.strictObject({ labels: LabelMapSchema.default({}) }).default({ labels: {} }),
  warm: z.number().int().min(0).max(100).default(0),
  /** Absent: no check (the image's own HEALTHCHECK, if any, is not relied on). No default, so older specs hash the same. */
  healthCheck: HealthCheckSchema.optional(),
});

/** What a client sends (defaults optional). */
export type ToolSpecInput = z.input<typeof ToolSpecSchema>;
/** A validated spec with every default filled in. */
export type ToolSpec = z.output<typeof ToolSpecSchema>;

/** Deterministic JSON (sorted keys) so equal specs compare and hash equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as Record<string, unknown>)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
