// Drive the React inbox page in headless Chromium and print what happened as one JSON line.
//
//   node run.mjs '{"url": "...", "title": "...", "outDir": "/tmp/x", "screenshot": "inbox.png",
//                  "timeoutMs": 20000,
//                  "grantNotifications": true, "liveTitle": null}'
//
// With liveTitle set, once `title` is listed the driver prints {"event": "listed"} on its own line
// and keeps the panel open until liveTitle shows up too: the caller sends it at that moment, so
// only the realtime channel (socket.io) can bring it in.
//
// The web-push opt-in overlay: the component draws it inside the panel whenever
// Notification.permission is "default" or "denied" (whatever the app's enableWebPush says), until
// the user answers it. By default the driver grants the page origin the "notifications"
// permission, as for a user who already allowed notifications, so it never shows. With
// grantNotifications=false it shows; the driver then clicks "Maybe later", like a user would.
// overlayText names the overlay's text where a version words it differently.
//
// With liveTitle and bulkSeen set, once liveTitle shows the driver closes the panel and prints
// {"event": "closed"}; the caller sends one more, the driver waits for the bell's badge to count
// it and prints {"event": "badge"}; the caller marks the inbox seen elsewhere (REST), and the
// driver waits for the badge to clear: only the socket's seen events can clear it.
//
// stubStyles lists URL prefixes of third-party stylesheets the component imports (fonts, a
// CDN theme): they are answered with an empty stylesheet, recorded in `stubbed`, instead of
// being aborted (an aborted import logs a console error).
//
// The report carries the visible texts of the listed and the live item (itemTexts,
// liveItemTexts) and the console's errors (consoleErrors) beside uncaught ones (pageErrors).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const {
  url,
  title,
  outDir,
  screenshot = 'inbox.png',
  timeoutMs = 20000,
  grantNotifications = true,
  liveTitle = null,
  overlayText = 'Enable web push notifications',
  bulkSeen = false,
  stubStyles = [],
  executablePath = '/usr/bin/chromium',
} = JSON.parse(process.argv[2]);
const started = Date.now();
const pageOrigin = new URL(url).origin;
const isLocal = (u) => {
  try {
    const { protocol, hostname } = new URL(u);
    return ['data:', 'blob:', 'about:'].includes(protocol) || hostname === '127.0.0.1';
  } catch {
    return false;
  }
};

const result = {
  ok: false,
  titleFound: false,
  liveTitleFound: false,
  requestsAfterListed: [],
  overlayShown: false,
  overlayDismissed: false,
  overlayScreenshot: null,
  notificationPermission: null,
  badge: null,
  feedItems: [],
  requests: [],
  failedRequests: [],
  blocked: [],
  stubbed: [],
  websockets: [],
  itemTexts: [],
  liveItemTexts: [],
  badgeCounted: null,
  badgeCleared: false,
  console: [],
  consoleErrors: [],
  pageErrors: [],
  screenshot: join(outDir, screenshot),
  error: null,
  durationMs: 0,
};

/** The visible texts of the feed item whose heading reads `heading`. */
async function texts(page, heading) {
  return page.evaluate((heading) => {
    const title = Array.from(document.querySelectorAll('*')).find(
      (el) => el.children.length === 0 && el.textContent.trim() === heading,
    );
    // Up from the heading to the smallest box that holds more than the heading.
    let box = title;
    while (box?.parentElement && box.innerText.trim() === heading) box = box.parentElement;
    return (box?.innerText ?? '').split('\n').map((t) => t.trim()).filter(Boolean);
  }, heading);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
let context;
try {
  context = await launchChromium(userDataDir, {
    executablePath,
    viewport: { width: 1000, height: 800 },
    timeoutMs,
  });
  if (grantNotifications) await context.grantPermissions(['notifications'], { origin: pageOrigin });

  // Nothing leaves 127.0.0.1: anything else is recorded and aborted.
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (isLocal(u)) return route.continue();
    if (stubStyles.some((prefix) => u.startsWith(prefix))) {
      result.stubbed.push(u);
      return route.fulfill({ status: 200, contentType: 'text/css', body: '' });
    }
    result.blocked.push(u);
    return route.abort('blockedbyclient');
  });

  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeoutMs);
  page.on('console', (m) => {
    const line = `${m.type()}: ${m.text()}`.slice(0, 500);
    result.console.push(line);
    if (m.type() === 'error') result.consoleErrors.push(line);
  });
  page.on('pageerror', (e) => result.pageErrors.push(String(e).slice(0, 500)));
  page.on('requestfailed', (r) =>
    result.failedRequests.push(`${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`),
  );
  page.on('response', (r) => {
    if (!r.url().startsWith(pageOrigin)) {
      result.requests.push(`${r.request().method()} ${r.url()} ${r.status()}`);
    }
  });
  page.on('websocket', (ws) => {
    const entry = { url: ws.url(), framesReceived: 0, connected: false, error: null, closed: false };
    result.websockets.push(entry);
    ws.on('framereceived', ({ payload }) => {
      entry.framesReceived += 1;
      // "40…" is socket.io's CONNECT acknowledgement for a namespace: the server accepted us.
      if (String(payload).startsWith('40')) entry.connected = true;
    });
    ws.on('socketerror', (e) => (entry.error = String(e)));
    ws.on('close', () => (entry.closed = true));
  });

  await page.addInitScript(() => {
    window.badgeText = () =>
      document.querySelector('[aria-label="Notifications"]')?.innerText.trim() ?? '';
  });
  await page.goto(url);
  result.notificationPermission = await page.evaluate(() => Notification.permission);

  const bell = page.getByRole('button', { name: 'Notifications' });
  await bell.waitFor();
  // The badge shows the unseen count from /v3/sdk/connect; the feed loads when the panel opens.
  await page
    .waitForFunction(
      () => document.querySelector('[aria-label="Notifications"]')?.innerText.trim(),
      null,
      { timeout: 5000 },
    )
    .catch(() => {});
  result.badge = (await bell.innerText()).trim() || null;
  await bell.click();

  const overlay = page.getByText(overlayText, { exact: true });
  const item = page.getByText(title, { exact: true });
  // Whichever shows first; a wait that loses the race must not end the run when it times out.
  const settle = (promise) => promise.catch(() => {});
  await Promise.race([settle(overlay.waitFor()), settle(item.waitFor())]);
  if (await overlay.isVisible()) {
    result.overlayShown = true;
    result.overlayScreenshot = join(outDir, screenshot.replace(/\.png$/, '') + '-prompt.png');
    await page.screenshot({ path: result.overlayScreenshot });
    await page.getByRole('button', { name: 'Maybe later' }).click();
    await overlay.waitFor({ state: 'hidden' });
    result.overlayDismissed = true;
  }
  await item.waitFor();
  result.titleFound = true;
  result.itemTexts = await texts(page, title);
  if (liveTitle) {
    // Send the live item only once the socket is in, so it cannot slip in before the listing.
    const deadline = Date.now() + timeoutMs;
    while (!result.websockets.some((ws) => ws.connected)) {
      if (Date.now() > deadline) throw new Error('the socket.io connection was never accepted');
      await page.waitForTimeout(50);
    }
    const requestsBefore = result.requests.length;
    process.stdout.write(`${JSON.stringify({ event: 'listed' })}\n`);
    await page.getByText(liveTitle, { exact: true }).waitFor();
    result.liveTitleFound = true;
    result.requestsAfterListed = result.requests.slice(requestsBefore);
    result.liveItemTexts = await texts(page, liveTitle);
  }
  result.feedItems = await page.evaluate(() =>
    Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6,p,span,div'))
      .filter((el) => el.children.length === 0 && el.textContent.trim())
      .map((el) => el.textContent.trim())
      .slice(0, 60),
  );
  await page.screenshot({ path: result.screenshot });
  if (liveTitle && bulkSeen) {
    await bell.click();
    await page.getByText(liveTitle, { exact: true }).waitFor({ state: 'hidden' });
    process.stdout.write(`${JSON.stringify({ event: 'closed' })}\n`);
    await page.waitForFunction(() => badgeText() !== '', null, { polling: 50 });
    result.badgeCounted = await page.evaluate(() => badgeText());
    process.stdout.write(`${JSON.stringify({ event: 'badge' })}\n`);
    await page.waitForFunction(() => badgeText() === '', null, { polling: 50 });
    result.badgeCleared = true;
  }
  result.ok = true;
} catch (err) {
  result.error = String(err?.stack ?? err).slice(0, 2000);
  const page = context?.pages()[0];
  if (page) await page.screenshot({ path: result.screenshot }).catch(() => {});
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  result.durationMs = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
