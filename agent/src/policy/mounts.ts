/**
 * The lexical mount policy is protocol's (protocol/src/policy): ONE set of rules, run by the
 * control plane on PUT /tools and again here by the agent. This module only re-exports it for the
 * agent's callers; what needs the host's filesystem (symlink resolution, pins) is in resolve.ts.
 */
export {
  checkMount,
  checkMounts,
  isWithin,
  matchAllowed,
  parseAllowedMounts,
  sourceRefusal,
  type AllowedMount,
  type CheckedMount,
  type MountCheck,
  type MountRequest,
  type MountsCheck,
} from '../../../protocol/src/index.ts';
