import { createRoute, type z } from '@hono/zod-openapi';
import { AUDIT_TIMEOUT_MS } from '../../services/audit.ts';
import type { Deps } from '../deps.ts';
import { actorOf, requireAuth } from '../middleware/auth.ts';
import { AuditResultSchema, errorResponses, json } from '../schemas.ts';
import { router, security } from './common.ts';

const DESCRIPTION = [
  'Asks every agent connected to this control plane to inspect every container on its engine, managed by MACHETE or not,',
  'and reports CIS-style findings per container: privileged, engine socket mounts, host namespaces, missing memory or CPU limits,',
  `dangerous capabilities, no-new-privileges unset, unconfined seccomp/AppArmor. Hosts that do not report within ${AUDIT_TIMEOUT_MS / 1000} s are listed`,
  'with status `timeout`; hosts believed up but not reachable from here with status `error`. Read only: nothing is changed.',
].join(' ');

export function auditRoutes(d: Deps) {
  // Admin only: the report describes every container on every host, MACHETE's or not.
  const admin = requireAuth({ tokens: d.tokens, events: d.events, role: 'admin' });
  const app = router();

  app.openapi(
    createRoute({
      method: 'post', path: '/audit', tags: ['audit'], security, middleware: [admin] as const,
      summary: 'Audit every container on every connected host', description: DESCRIPTION,
      responses: { 200: json(AuditResultSchema, 'Findings per host and container'), ...errorResponses(401, 403, 429) },
    }),
    async (c) => c.json((await d.services.audit.run(actorOf(c.var.principal))) as z.infer<typeof AuditResultSchema>, 200),
  );

  return app;
}
