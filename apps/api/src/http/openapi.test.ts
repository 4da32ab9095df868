import type { z } from '@hono/zod-openapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi } from '../../../../test/helpers/api.ts';
import { HealthSchema, ReadySchema } from './openapi.ts';
import { SecretBody, SecretSchema } from './routes/secrets.ts';
import * as S from './schemas.ts';

// GET /api/openapi.json against the contract of API.md: every route there is documented with
// its security requirement, every JSON body and answer has an example, and every example is
// valid under the zod schema the route validates with.

/** Every route of API.md (and /api/ready from the operations contract), with who may call it. */
const API_MD: [string, 'none' | 'optional' | 'bearer' | 'agent'][] = [
  ['GET /api/health', 'none'],
  ['GET /api/ready', 'none'],
  ['GET /api/openapi.json', 'none'],
  ['GET /api/docs', 'none'],
  ['GET /metrics', 'optional'],
  ['POST /api/v1/tokens', 'bearer'],
  ['DELETE /api/v1/tokens/{id}', 'bearer'],
  ['POST /api/v1/hosts/join-tokens', 'bearer'],
  ['GET /api/v1/hosts', 'bearer'],
  ['GET /api/v1/hosts/{id}', 'bearer'],
  ['PATCH /api/v1/hosts/{id}', 'bearer'],
  ['POST /api/v1/hosts/{id}/drain', 'bearer'],
  ['PUT /api/v1/tools/{name}', 'bearer'],
  ['GET /api/v1/tools', 'bearer'],
  ['GET /api/v1/tools/{name}', 'bearer'],
  ['DELETE /api/v1/tools/{name}', 'bearer'],
  ['PUT /api/v1/tools/{name}/deployment', 'bearer'],
  ['GET /api/v1/tools/{name}/deployment', 'bearer'],
  ['GET /api/v1/instances', 'bearer'],
  ['POST /api/v1/tools/{name}/invoke', 'bearer'],
  ['GET /api/v1/invocations/{id}', 'bearer'],
  ['DELETE /api/v1/invocations/{id}', 'bearer'],
  ['GET /api/v1/instances/{id}/logs', 'bearer'],
  ['GET /api/v1/invocations/{id}/logs', 'bearer'],
  ['PUT /api/v1/secrets/{name}', 'bearer'],
  ['GET /api/v1/secrets', 'bearer'],
  ['DELETE /api/v1/secrets/{name}', 'bearer'],
  ['GET /api/v1/events', 'bearer'],
  ['GET /api/v1/agent/connect', 'agent'],
];

/** The zod schema behind each named component: its example must pass it. */
const COMPONENTS: Record<string, z.ZodType> = {
  Error: S.ErrorSchema, ToolSpec: S.ToolSpecBody, Tool: S.ToolSchema, Instance: S.InstanceSchema, DeploymentRequest: S.DeploymentBody, Deployment: S.DeploymentSchema,
  Host: S.HostSchema, HostPatch: S.HostPatchBody, TokenRequest: S.TokenBody, IssuedToken: S.IssuedTokenSchema, JoinTokenRequest: S.JoinTokenBody, JoinToken: S.JoinTokenSchema,
  EnrollRequest: S.EnrollBody, Enrollment: S.EnrollSchema, Event: S.EventSchema, InvokeRequest: S.InvokeBody, Invocation: S.InvocationSchema,
  HostAudit: S.HostAuditSchema, AuditResult: S.AuditResultSchema, Secret: SecretSchema, SecretValue: SecretBody, Health: HealthSchema, Ready: ReadySchema,
};

interface Media {
  schema?: Schema;
  example?: unknown;
}
interface Schema {
  $ref?: string;
  example?: unknown;
  examples?: unknown[];
  items?: Schema;
}
interface Operation {
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, { content?: Record<string, Media> }>;
}
interface Doc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, { type: string; scheme?: string }> };
}

let api: Awaited<ReturnType<typeof makeApi>>;
let doc: Doc;
beforeAll(async () => {
  api = await makeApi();
  const r = await api.call('GET', '/api/openapi.json', undefined, null);
  expect(r.status).toBe(200);
  doc = r.body as Doc;
}, 60_000);
afterAll(() => api?.close());

const op = (key: string): Operation | undefined => {
  const [method, path] = key.split(' ') as [string, string];
  return doc.paths[path]?.[method.toLowerCase()];
};

/** An example for a media type: its own, its schema's, its component's, or its array items'. */
function exampleOf(m: Media): unknown {
  if (m.example !== undefined) return m.example;
  const ofSchema = (s: Schema | undefined): unknown => {
    if (!s) return undefined;
    if (s.example !== undefined) return s.example;
    if (s.examples?.length) return s.examples[0];
    if (s.$ref) return ofSchema(doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]);
    const item = ofSchema(s.items);
    return item === undefined ? undefined : [item];
  };
  return ofSchema(m.schema);
}

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 and declares the bearer schemes of each token class', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const name of ['bearer', 'join', 'agent', 'scrape']) expect(doc.components.securitySchemes[name], name).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it.each(API_MD)('documents %s with its security requirement (%s)', (key, auth) => {
    const o = op(key);
    expect(o, `${key} is missing`).toBeDefined();
    const schemes = (o!.security ?? []).map((req) => Object.keys(req).join('+'));
    if (auth === 'none') expect(schemes).toEqual([]);
    if (auth === 'optional') expect(schemes).toEqual(['', 'scrape', 'bearer']);
    if (auth === 'bearer' || auth === 'agent') {
      expect(schemes).toEqual([auth]);
      expect(Object.keys(o!.responses), 'documents the refusal').toContain('401');
    }
  });

  it('has an example for every JSON request body and every JSON answer', () => {
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, o] of Object.entries(ops)) {
        const json = o.requestBody?.content['application/json'];
        if (json && exampleOf(json) === undefined) missing.push(`${method} ${path} body`);
        for (const [status, r] of Object.entries(o.responses)) {
          const m = r.content?.['application/json'];
          // The document's own schema is a free-form object; everything else needs an example.
          if (m && path !== '/api/openapi.json' && exampleOf(m) === undefined) missing.push(`${method} ${path} ${status}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('gives every named schema an example that its zod schema accepts', () => {
    const names = Object.keys(doc.components.schemas).sort();
    expect(names.filter((n) => !COMPONENTS[n]), 'components with no zod schema named in this test').toEqual([]);
    for (const name of names) {
      const s = doc.components.schemas[name]!;
      const example = s.example ?? s.examples?.[0];
      expect(example, `${name} has no example`).toBeDefined();
      const parsed = COMPONENTS[name]!.safeParse(example);
      expect(parsed.success, `${name}: ${parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`).toBe(true);
    }
  });

  it('serves the interactive page from this origin only, under a CSP without inline script', async () => {
    const r = await api.app.request('/api/docs');
    expect(r.status).toBe(200);
    const html = await r.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((r) => r !== 'data:,');
    expect(refs.sort()).toEqual(['/api/docs/start.js', '/api/docs/swagger-ui-bundle.js', '/api/docs/swagger-ui.css']);
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/);
    const csp = r.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self';");
    expect(csp).not.toMatch(/https?:|unsafe-eval|script-src[^;]*unsafe-inline/);
    for (const ref of refs) {
      const a = await api.app.request(ref);
      expect(a.status, ref).toBe(200);
      expect(a.headers.get('content-type'), ref).toMatch(ref.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
      expect((await a.text()).length, ref).toBeGreaterThan(ref.endsWith('start.js') ? 50 : 10_000);
    }
    expect(await (await api.app.request('/api/docs/start.js')).text()).toContain("url: '/api/openapi.json'");
  });
});
