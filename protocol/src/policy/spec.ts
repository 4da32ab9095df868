import type { ToolSpec } from '../toolSpec.ts';
import { checkMounts, type CheckedMount } from './mounts.ts';
import { badPathReason, isWithin, normalizeAbsolute, type AllowedMount } from './paths.ts';

/**
 * The tool-spec policy beyond the schema: what a well-formed spec may still not ask for. The
 * schema (toolSpec.ts) already refuses unknown fields in any casing or nesting, privileges,
 * host networks and out-of-range resources; this adds the path rules. Run by the API on
 * PUT /tools and by every agent on every instance it is handed.
 */

/** Kernel interfaces of the container: a process started there can reach what they expose. */
const FORBIDDEN_WORKDIRS = ['/proc', '/sys', '/dev'];

export interface SpecPolicyOptions {
  /** Allowlist to compare mount sources with; null: none known here (the control plane without a fleet-wide list). */
  allowedMounts: readonly AllowedMount[] | null;
  /** The agent's engine endpoint: a mount exposing its socket is refused. */
  engineEndpoint?: string;
  /** Absolute host paths of the agent's own secrets (engine TLS certificates, credential directory). */
  protectedPaths?: readonly string[];
}

/**
 * On refusal: `field` is the dotted path of the offending field (`mounts.0.source`, `workingDir`),
 * `reason` says why, and `report` is the line an agent reports (`mounts[0]: …`). None echoes a value.
 */
export type SpecPolicyResult = { ok: true; mounts: CheckedMount[] } | { ok: false; field: string; reason: string; report: string };

/** Why `workingDir` is refused, or undefined. */
export function workingDirRefusal(workingDir: string | undefined): string | undefined {
  if (workingDir === undefined) return undefined;
  const bad = badPathReason(workingDir, 'working directory');
  if (bad) return bad;
  const n = normalizeAbsolute(workingDir);
  if (FORBIDDEN_WORKDIRS.some((p) => isWithin(n, p))) return 'working directory is a protected container path';
  return undefined;
}

/** Checks the parts of a (schema-valid) spec that the schema cannot: mounts and the working directory. */
export function checkSpecPolicy(spec: Pick<ToolSpec, 'mounts' | 'workingDir'>, opts: SpecPolicyOptions): SpecPolicyResult {
  const mounts = checkMounts(spec.mounts, opts.allowedMounts, opts.engineEndpoint, opts.protectedPaths);
  if (!mounts.ok) return { ok: false, field: mounts.field, reason: mounts.detail, report: mounts.reason };
  const wd = workingDirRefusal(spec.workingDir);
  if (wd) return { ok: false, field: 'workingDir', reason: wd, report: wd };
  return { ok: true, mounts: mounts.mounts };
}
