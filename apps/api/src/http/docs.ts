import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono, type Context } from 'hono';

/**
 * `/api/docs`: Swagger UI on this origin, from the swagger-ui-dist package. Nothing is loaded
 * from another origin (a control plane may have no Internet access, and a page that holds a
 * token must not run third-party code), and the CSP allows no inline script: the page's own
 * start-up is a file too. The files are read on first request and kept.
 */
const FILES = {
  '/api/docs/swagger-ui.css': { file: 'swagger-ui.css', type: 'text/css; charset=utf-8' },
  '/api/docs/swagger-ui-bundle.js': { file: 'swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8' },
} as const;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MACHETE API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<main id="swagger-ui"></main>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/start.js"></script>
</body>
</html>
`;

// Authorizations typed into the page stay in the page: never written to localStorage.
const START = `window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: false, tryItOutEnabled: false });\n`;

/** Swagger UI sets inline styles on its elements; scripts stay this origin's files only. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: string;
  type: string;
  etag: string;
}
const asset = (body: string, type: string): Asset => ({ body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });

let cache: Map<string, Asset> | null = null;
function assets(): Map<string, Asset> {
  if (cache) return cache;
  const dir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  cache = new Map<string, Asset>([
    ['/api/docs', asset(PAGE, 'text/html; charset=utf-8')],
    ['/api/docs/start.js', asset(START, 'text/javascript; charset=utf-8')],
    ...Object.entries(FILES).map(([url, f]) => [url, asset(readFileSync(path.join(dir, f.file), 'utf8'), f.type)] as [string, Asset]),
  ]);
  return cache;
}

export function docsRoutes(): Hono {
  const app = new Hono();
  const serve = (url: string) => (c: Context) => {
    const a = assets().get(url)!;
    c.header('content-security-policy', CSP);
    c.header('cache-control', 'no-cache');
    c.header('etag', a.etag);
    if (c.req.header('if-none-match') === a.etag) return c.body(null, 304);
    return c.body(a.body, 200, { 'content-type': a.type });
  };
  for (const url of ['/api/docs', '/api/docs/start.js', ...Object.keys(FILES)]) app.get(url, serve(url));
  return app;
}
