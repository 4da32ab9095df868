import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

// The dashboard in a real browser (Debian's Chromium, headless) against a real control plane,
// a real agent and a real engine. Screenshots are kept under test-results/screenshots/.
const SHOTS = path.resolve('test-results/screenshots');
const CHROMIUM = '/usr/bin/chromium';
/** Roles whose elements a user operates: each needs an accessible name. */
const CONTROL_ROLES = new Set(['button', 'textbox', 'combobox', 'spinbutton', 'checkbox', 'radio', 'listbox', 'searchbox', 'slider', 'switch', 'link']);

let cluster: TestCluster;
let browser: Browser;
let page: Page;
let admin: string;
const problems: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Form fields without a <label> of their own (a placeholder or title is not enough). */
async function unlabelledFields(): Promise<string[]> {
  return page.locator('input, select, textarea').evaluateAll((els) =>
    els.filter((el) => !(el as unknown as { labels?: ArrayLike<unknown> | null }).labels?.length).map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** Controls the browser's own accessibility tree shows without a name. */
async function unnamedControls(): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: { ignored: boolean; role?: { value: string }; name?: { value: string } }[] };
  await cdp.detach();
  return nodes.filter((n) => !n.ignored && CONTROL_ROLES.has(n.role?.value ?? '') && !String(n.name?.value ?? '').trim()).map((n) => n.role!.value);
}

async function go(section: string): Promise<void> {
  await page.getByRole('link', { name: section, exact: true }).click();
  await page.getByRole('heading', { level: 2, name: section }).waitFor();
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  cluster = new TestCluster({ dockerSocket: inject('dockerSocket') });
  await cluster.startServer();
  await cluster.startAgent();
  await waitFor(async () => (await cluster.api('GET', '/api/v1/hosts')).body.find((h: any) => h.status === 'ready'), 'host ready');
  admin = await cluster.token('admin');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
});
afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

describe('dashboard in Chromium', () => {
  it('serves / with a CSP that allows no inline script and no other origin', async () => {
    const res = await fetch(`${cluster.url}/`);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    expect(csp).not.toContain('unsafe-inline');
    expect(await res.text()).not.toMatch(/<script(?![^>]*(type="importmap"|src=))/);
  });

  it('signs in with a token by keyboard alone and keeps it out of the URL', async () => {
    await page.goto(`${cluster.url}/`);
    const token = page.getByLabel('Access token');
    await expect.poll(() => token.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    await page.keyboard.type('not-a-token');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
    // The browser logs the refused request itself; that one is expected.
    const refusedLog = problems.findIndex((p) => p.includes('status of 401'));
    if (refusedLog >= 0) problems.splice(refusedLog, 1);
    await token.fill('');
    await page.keyboard.type(admin);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 2, name: 'Tools' }).waitFor();
    expect(page.url()).not.toContain(admin);
    expect(await page.evaluate("sessionStorage.getItem('machete.token')")).toBe(admin);
    await page.getByRole('status', { name: 'Live updates' }).filter({ hasText: 'Live' }).waitFor();
    await shot('01-signed-in');
  });

  it('adds a tool, scales it and shows it converge to the replicas running on the engine', async () => {
    await page.getByText('Add or update a tool').click();
    await page.getByLabel('Tool name').fill('web-sleep');
    await page.getByLabel('Tool spec (JSON)').fill(JSON.stringify({ image: inject('testImage'), command: ['sleep', '3600'] }));
    await page.getByRole('button', { name: 'Save tool' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved web-sleep, version 1' }).waitFor();
    await page.getByLabel('Replicas of web-sleep').fill('2');
    await page.getByRole('button', { name: 'Scale web-sleep' }).click();
    await page.getByTestId('deployment-web-sleep').filter({ hasText: '2 of 2 running' }).waitFor({ timeout: 60_000 });
    const running = (await cluster.containers(false)).filter((c) => c.Labels['machete.tool'] === 'web-sleep');
    expect(running).toHaveLength(2);
    await shot('02-scaled');
    await go('Hosts');
    await page.getByRole('cell', { name: 'web-sleep ×2' }).waitFor();
    await go('Instances');
    await expect.poll(() => page.getByRole('row').filter({ hasText: 'web-sleep' }).count()).toBe(2);
    await shot('03-hosts-instances');
  }, 90_000);

  it('scales by keyboard alone: Tab reaches the replicas field, Enter submits', async () => {
    await go('Tools');
    let label = '';
    for (let i = 0; i < 60 && label !== 'Replicas of web-sleep'; i++) {
      await page.keyboard.press('Tab');
      label = await page.evaluate(() => {
        const el = document.activeElement as HTMLInputElement | null;
        return el?.labels?.[0]?.textContent?.trim() ?? '';
      });
    }
    expect(label).toBe('Replicas of web-sleep');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('1');
    await page.keyboard.press('Enter');
    await page.getByTestId('deployment-web-sleep').filter({ hasText: '1 of 1 running' }).waitFor({ timeout: 60_000 });
    await waitFor(async () => (await cluster.containers(false)).filter((c) => c.Labels['machete.tool'] === 'web-sleep').length === 1, 'one web-sleep container left');
  }, 90_000);

  it('invokes a tool from the page and shows its exit code, stdout and stderr', async () => {
    await cluster.api('PUT', '/api/v1/tools/web-echo', { image: inject('testImage'), command: ['sh', '-c', 'echo "$1 $2"; echo oops >&2; exit 3', 'sh'] });
    await go('Invocations');
    await page.getByLabel('Tool').selectOption('web-echo');
    await page.getByLabel('Arguments, one per line').fill('hello\ndashboard');
    await page.getByRole('button', { name: 'Run' }).click();
    const result = page.getByRole('article').first();
    await result.getByTestId('stdout').filter({ hasText: 'hello dashboard' }).waitFor({ timeout: 30_000 });
    expect(await result.getByTestId('exit-code').textContent()).toBe('3');
    expect(await result.getByTestId('stderr').textContent()).toBe('oops\n');
    await shot('04-invoked');
  }, 60_000);

  it('shows an event live, without a reload', async () => {
    await go('Events');
    const before = await page.evaluate("performance.getEntriesByType('navigation').length");
    await cluster.api('PUT', '/api/v1/tools/web-live-marker', { image: inject('testImage') });
    await page.getByRole('row').filter({ hasText: 'web-live-marker' }).filter({ hasText: 'tool.put' }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate("performance.getEntriesByType('navigation').length")).toBe(before);
    await shot('05-events');
  });

  it('gives every control an accessible name and every field a label on every page', async () => {
    for (const section of ['Tools', 'Hosts', 'Instances', 'Invocations', 'Events']) {
      await go(section);
      expect({ section, unnamed: await unnamedControls(), unlabelled: await unlabelledFields() }).toEqual({ section, unnamed: [], unlabelled: [] });
    }
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Access token').waitFor();
    expect(await unnamedControls()).toEqual([]);
    expect(await unlabelledFields()).toEqual([]);
    expect(await page.evaluate("sessionStorage.getItem('machete.token')")).toBeNull();
  });

  it('ran without a script error or CSP violation', () => {
    expect(problems).toEqual([]);
  });
});
