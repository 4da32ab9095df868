import { imageAllowed, type ImagePattern, type ToolSpec } from '../../../../protocol/src/index.ts';
import { invalid } from '../errors.ts';
import type { SecretService } from './secrets.ts';

/**
 * Deployment-time checks that need configuration or the database, on top of the spec schema:
 * the image allowlist and the existence of every named secret. Each refusal is a 400 naming the field.
 */
export function createSpecPolicy(opts: { allowedImages: readonly ImagePattern[] | null; secrets: SecretService }) {
  return {
    async check(spec: ToolSpec): Promise<void> {
      if (!imageAllowed(spec.image, opts.allowedImages)) throw invalid('image', 'image is not allowed by MACHETE_ALLOWED_IMAGES');
      await opts.secrets.assertExist(spec.secrets);
    },
  };
}
export type SpecPolicy = ReturnType<typeof createSpecPolicy>;
