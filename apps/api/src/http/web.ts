import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';

/**
 * The dashboard (apps/web) as static files. Nothing of it is imported: the files are read
 * once into a fixed map, so a request can only ever name a file that is listed here
 * (no path from the URL ever reaches the filesystem).
 */
const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));
/** preact + hooks + htm in one self-contained ES module, served as the import map names it. */
const VENDOR = { url: '/web/vendor/htm-preact.mjs', file: 'preact/standalone.mjs' };
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

interface Asset {
  body: string;
  type: string;
  etag: string;
}

function asset(file: string): Asset {
  const body = readFileSync(file, 'utf8');
  return { body, type: TYPES[path.extname(file)] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function listFiles(dir: string, prefix: string): [string, string][] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return listFiles(full, `${prefix}${e.name}/`);
    return TYPES[path.extname(e.name)] ? [[`${prefix}${e.name}`, full] as [string, string]] : [];
  });
}

/** The one inline script is the import map; it is allowed by its hash, nothing else inline is. */
function contentSecurityPolicy(html: string): string {
  const m = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html);
  const hash = m ? ` 'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'` : '';
  return [
    "default-src 'none'",
    `script-src 'self'${hash}`,
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** `/` and `/web/*`: the dashboard, with a strict CSP (no inline script, no third-party origin). */
export function webRoutes(): Hono {
  const assets = new Map<string, Asset>();
  for (const [rel, full] of listFiles(path.join(WEB_DIR, 'src'), '/web/')) assets.set(rel, asset(full));
  assets.set('/web/app.css', asset(path.join(WEB_DIR, 'app.css')));
  assets.set(VENDOR.url, asset(path.join(path.dirname(createRequire(import.meta.url).resolve('htm')), '..', VENDOR.file)));
  const index = asset(path.join(WEB_DIR, 'index.html'));
  const csp = contentSecurityPolicy(index.body);

  const app = new Hono();
  const serve = (a: Asset) => (c: import('hono').Context) => {
    c.header('content-security-policy', csp);
    c.header('cache-control', 'no-cache');
    c.header('etag', a.etag);
    if (c.req.header('if-none-match') === a.etag) return c.body(null, 304);
    return c.body(a.body, 200, { 'content-type': a.type });
  };
  app.get('/', serve(index));
  for (const [url, a] of assets) app.get(url, serve(a));
  return app;
}
