import { OpenAPIHono } from '@hono/zod-openapi';
import { MacheteError } from '../../errors.ts';
import type { AuthEnv } from '../middleware/auth.ts';

export const security = [{ bearer: [] }];

/** Every router shares one validation hook: the first issue becomes a 400 naming the field. */
export function router() {
  return new OpenAPIHono<AuthEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        // An unknown key is named by the key itself, not by the object that holds it.
        const path = issue?.code === 'unrecognized_keys' && issue.keys[0] ? [...issue.path, issue.keys[0]] : (issue?.path ?? []);
        const field = path.length ? path.join('.') : result.target;
        throw new MacheteError('invalid_argument', `${field}: ${issue?.message ?? 'invalid'}`, {
          field,
          issues: result.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
        });
      }
    },
  });
}
