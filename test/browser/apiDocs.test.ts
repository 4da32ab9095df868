import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/cluster.ts';

// /api/docs in Debian's Chromium: Swagger UI renders the OpenAPI document from this origin
// alone (no CDN: a control plane may be offline), under its CSP, without a script error.
const SHOTS = path.resolve('test-results/screenshots');
let cluster: TestCluster;
let browser: Browser;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  cluster = new TestCluster({ dockerSocket: '/nonexistent' });
  await cluster.startServer();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

describe('API docs in Chromium', () => {
  it('renders every operation and schema of the document, loading nothing from another origin', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const origins = new Set<string>();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
    page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
    await page.goto(`${cluster.url}/api/docs`);
    await page.getByRole('heading', { name: /MACHETE API/ }).waitFor({ timeout: 20_000 });
    const doc = (await (await fetch(`${cluster.url}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    // One block per operation, e.g. "PUT /api/v1/tools/{name}".
    await expect.poll(() => page.locator('.opblock').count(), { timeout: 10_000 }).toBe(operations);
    await page.locator('.opblock-summary-path', { hasText: '/api/v1/tools/{name}/deployment' }).first().waitFor();
    await page.getByRole('button', { name: 'Authorize' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, '06-api-docs.png'), fullPage: false });
    expect([...origins]).toEqual([cluster.url]);
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});
