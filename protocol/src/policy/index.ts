export { badPathReason, hasDotDot, isWithin, matchAllowed, normalizeAbsolute, overlaps, parseAllowedMounts, pathSegments, type AllowedMount } from './paths.ts';
export { checkMount, checkMounts, sourceRefusal, type CheckedMount, type MountCheck, type MountField, type MountRequest, type MountsCheck } from './mounts.ts';
export { checkSpecPolicy, workingDirRefusal, type SpecPolicyOptions, type SpecPolicyResult } from './spec.ts';
