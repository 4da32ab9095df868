import { checkSpecPolicy, imageAllowed, type AllowedMount, type ImagePattern, type ToolSpec } from '../../../../protocol/src/index.ts';
import { invalid } from '../errors.ts';
import type { SecretService } from './secrets.ts';

/**
 * Deployment-time checks on top of the spec schema, each refusal a 400 naming the field:
 * - the tool-spec policy of protocol/src/policy (the same module every agent runs again): mount
 *   paths normalized, sensitive host paths and sockets refused, target and working-directory
 *   rules, and — when MACHETE_ALLOWED_MOUNTS is set on the control plane — the fleet-wide
 *   allowlist with its ro/rw modes. Without it the API does not know the hosts' allowlists and
 *   each agent compares with its own;
 * - the image allowlist;
 * - the existence of every named secret.
 * It runs before anything is stored, so a refused spec never reaches the database or an agent.
 */
export function createSpecPolicy(opts: { allowedImages: readonly ImagePattern[] | null; allowedMounts?: readonly AllowedMount[] | null; secrets: SecretService }) {
  const allowedMounts = opts.allowedMounts ?? null;
  return {
    async check(spec: ToolSpec): Promise<void> {
      const policy = checkSpecPolicy(spec, { allowedMounts });
      if (!policy.ok) throw invalid(policy.field, policy.reason);
      if (!imageAllowed(spec.image, opts.allowedImages)) throw invalid('image', 'image is not allowed by MACHETE_ALLOWED_IMAGES');
      await opts.secrets.assertExist(spec.secrets);
    },
  };
}
export type SpecPolicy = ReturnType<typeof createSpecPolicy>;
