// Drive Herald's admin console (/docs, Swagger UI) and /redoc in headless Chromium, with every
// host but Herald's blocked, and print what happened as one JSON line.
//
//   node console.mjs '{"base": "http://127.0.0.1:8000", "adminToken": "...", "outDir": "/tmp/x",
//                      "timeoutMs": 15000, "executablePath": "/usr/bin/chromium"}'
//
// On /docs it authorizes with the admin token, creates an app with the documented example body
// ("Try it out" as-is), then rotates that app's secret, reading both answers off the page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const {
  base,
  adminToken,
  outDir,
  timeoutMs = 15000,
  executablePath = '/usr/bin/chromium',
} = JSON.parse(process.argv[2]);
const origin = new URL(base).origin;
const started = Date.now();

const result = {
  ok: false,
  docs: { title: null, operations: 0, created: null, rotated: null },
  redoc: { title: null, operations: 0 },
  requests: [],
  blocked: [],
  // What the pages' Content-Security-Policy kept the browser from even asking for.
  refusedByPolicy: [],
  failedRequests: [],
  pageErrors: [],
  console: [],
  screenshots: [],
  error: null,
  durationMs: 0,
};

// Only Herald's origin, and what the page makes itself (data:, blob:), may be fetched.
const allowed = (u) => {
  try {
    const url = new URL(u);
    return ['data:', 'blob:', 'about:'].includes(url.protocol) || url.origin === origin;
  } catch {
    return false;
  }
};

async function executed(page, block) {
  // The answer of an operation's last "Execute": its status cell and its body.
  const live = block.locator('.live-responses-table tbody tr.response').first();
  await live.waitFor();
  const status = (await live.locator('td.response-col_status').innerText()).trim();
  const body = await live.locator('td.response-col_description pre').first().innerText();
  return { status: Number(status), body: JSON.parse(body) };
}

async function docs(page) {
  await page.goto(`${base}/docs`);
  const title = page.locator('.swagger-ui .info .title');
  await title.waitFor();
  result.docs.title = (await title.innerText()).trim();
  await page.locator('.opblock').first().waitFor();
  result.docs.operations = await page.locator('.opblock').count();

  await page.locator('.auth-wrapper button.authorize').click();
  // Each scheme is a form of its own: its fields, then its Authorize and Close buttons.
  const scheme = page.locator('.modal-ux form').filter({ hasText: 'adminToken' });
  await scheme.locator('input').fill(adminToken);
  await scheme.locator('button.authorize').click();
  await scheme.getByText('Authorized', { exact: true }).waitFor();
  await page.locator('.modal-ux button.close-modal').click();

  // Create an app with the body "Try it out" starts with: the documented example.
  const create = page.locator('#operations-admin-create_app_admin_apps_post');
  await create.locator('.opblock-summary').click();
  await create.locator('textarea.body-param__text').waitFor();
  await create.getByRole('button', { name: 'Execute' }).click();
  result.docs.created = await executed(page, create);
  await page.screenshot({ path: join(outDir, 'docs-created.png'), fullPage: false });
  result.screenshots.push(join(outDir, 'docs-created.png'));

  const rotate = page.locator('#operations-admin-rotate_secret_admin_apps__app_id__rotate_secret_post');
  await rotate.locator('.opblock-summary').click();
  await rotate.locator('input[placeholder="app_id"]').fill(String(result.docs.created.body.id));
  await rotate.getByRole('button', { name: 'Execute' }).click();
  result.docs.rotated = await executed(page, rotate);
  await rotate.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(outDir, 'docs-rotated.png') });
  result.screenshots.push(join(outDir, 'docs-rotated.png'));
}

async function redoc(page) {
  await page.goto(`${base}/redoc`);
  const title = page.locator('.api-info h1');
  await title.waitFor();
  result.redoc.title = (await title.innerText()).trim();
  // Each operation gets a heading in the middle panel.
  await page.locator('[data-section-id^="tag/"]').first().waitFor();
  result.redoc.operations = await page.locator('[data-section-id^="tag/"][data-section-id*="/operation/"]').count();
  await page.screenshot({ path: join(outDir, 'redoc.png') });
  result.screenshots.push(join(outDir, 'redoc.png'));
}

const userDataDir = mkdtempSync(join(tmpdir(), 'herald-console-'));
let context;
try {
  context = await launchChromium(userDataDir, {
    executablePath,
    viewport: { width: 1280, height: 900 },
    timeoutMs,
  });
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (allowed(u)) return route.continue();
    result.blocked.push(u);
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeoutMs);
  page.on('request', (r) => result.requests.push(`${r.method()} ${r.url()}`));
  page.on('console', (m) => {
    const text = m.text();
    if (text.includes('Content Security Policy')) result.refusedByPolicy.push(text.slice(0, 500));
    else result.console.push(`${m.type()}: ${text}`.slice(0, 500));
  });
  page.on('pageerror', (e) => result.pageErrors.push(String(e).slice(0, 500)));
  page.on('requestfailed', (r) =>
    result.failedRequests.push(`${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`),
  );

  await docs(page);
  await redoc(page);
  result.ok = true;
} catch (err) {
  result.error = String(err?.stack ?? err).slice(0, 2000);
  const page = context?.pages()[0];
  if (page) {
    const path = join(outDir, 'console-failed.png');
    await page.screenshot({ path }).catch(() => {});
    result.screenshots.push(path);
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  result.durationMs = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
