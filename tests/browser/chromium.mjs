// Headless Chromium for the drivers (run.mjs, console.mjs): a persistent context in the
// profile directory the caller made (and removes), with the flags that keep Chromium from
// reaching out on its own (updates, sync, QUIC), which the drivers' route guards would record.
import { chromium } from 'playwright-core';

export function launchChromium(userDataDir, { executablePath, viewport, timeoutMs }) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport,
    timeout: timeoutMs,
  });
}
