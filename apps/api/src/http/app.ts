import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import { MacheteError } from '../errors.ts';
import type { Deps } from './deps.ts';
import { createErrorHandler, errorBody } from './errorHandler.ts';
import { auditTrail } from './middleware/audit.ts';
import { jsonDepthLimit, rateLimit } from './middleware/limits.ts';
import { agentRoutes } from './routes/agent.ts';
import { auditRoutes } from './routes/audit.ts';
import { eventRoutes } from './routes/events.ts';
import { hostRoutes } from './routes/hosts.ts';
import { instanceRoutes } from './routes/instances.ts';
import { invocationRoutes } from './routes/invocations.ts';
import { logRoutes } from './routes/logs.ts';
import { observabilityRoutes, httpMetrics, requestLog } from './routes/observability.ts';
import { docsRoutes } from './docs.ts';
import { documentOperationalRoutes, withExamples } from './openapi.ts';
import { secretRoutes } from './routes/secrets.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { toolRoutes } from './routes/tools.ts';
import { webRoutes } from './web.ts';

export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_JSON_DEPTH = 64;
export const DEFAULT_HTTP_LIMITS = { ratePerSecond: 100, rateBurst: 200 };

/** The whole HTTP API as a Hono app; no listening here (server.ts does that). */
export function createApp(d: Deps) {
  const app = new OpenAPIHono();
  app.onError(createErrorHandler(d.log));
  app.notFound((c) => c.json(errorBody('not_found', 'no such route'), 404));
  app.use('*', requestLog(d.log));
  app.use('*', httpMetrics(d.metrics));
  app.use('*', secureHeaders({ contentSecurityPolicy: undefined }));
  // Outermost on /api: sees the final status of every request, refusals by the limits below included.
  app.use('/api/*', auditTrail({ events: d.events }));
  const limits = d.limits ?? DEFAULT_HTTP_LIMITS;
  app.use('/api/v1/*', rateLimit({ perSecond: limits.ratePerSecond, burst: limits.rateBurst }));
  app.use(
    '/api/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new MacheteError('payload_too_large', `request body exceeds ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );
  app.use('/api/*', jsonDepthLimit({ maxDepth: MAX_JSON_DEPTH }));

  app.route('/', observabilityRoutes(d));
  app.get('/api/health', (c) =>
    c.json({ status: 'healthy', version: d.version, connectedAgents: d.connectedHosts().size, ...(d.isLeader ? { leader: d.isLeader() } : {}), time: new Date().toISOString() }),
  );

  const v1 = new OpenAPIHono();
  v1.route('/', toolRoutes(d));
  v1.route('/', hostRoutes(d));
  v1.route('/', tokenRoutes(d));
  v1.route('/', secretRoutes(d));
  v1.route('/', instanceRoutes(d));
  v1.route('/', invocationRoutes(d));
  v1.route('/', logRoutes(d));
  v1.route('/', eventRoutes(d));
  v1.route('/', agentRoutes(d));
  v1.route('/', auditRoutes(d));
  app.route('/api/v1', v1);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'User token (admin, operator, viewer or invoker)' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'join', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Join token' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'agent', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Agent token bound to one host' });
  documentOperationalRoutes(app);
  const docConfig = {
    openapi: '3.1.0',
    info: { title: 'MACHETE API', version: d.version, description: 'Run containerized tools on a fleet of hosts, safely.' },
    servers: [{ url: '/' }],
  };
  // Built on first request: every route is registered by then, and the document never changes after.
  let doc: object | null = null;
  app.get('/api/openapi.json', (c) => c.json((doc ??= withExamples(app.getOpenAPI31Document(docConfig)))));
  app.route('/', docsRoutes());
  app.route('/', webRoutes());
  return app;
}
export type App = ReturnType<typeof createApp>;
