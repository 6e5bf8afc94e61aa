// axe-core in Debian's chromium at phone size, for tests/suite/pages.rs:
//
//   node axe.mjs CHROMIUM FILE.html...
//
// Prints {"FILE": [violation, ...]} with the serious and critical violations of each page.
// Playwright only drives the browser; it downloads nothing (playwright-core has no browsers).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const axeSource = require.resolve('axe-core/axe.min.js');

const [executablePath, ...files] = process.argv.slice(2);
if (!executablePath || files.length === 0) {
  console.error('usage: node axe.mjs CHROMIUM FILE.html...');
  process.exit(2);
}
// A fresh profile, and no traffic of the browser's own: the pages are local files.
const profile = mkdtempSync(join(tmpdir(), 'announce-axe-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 390, height: 844 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const results = {};
try {
  const page = context.pages()[0] ?? (await context.newPage());
  for (const file of files) {
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    await page.addScriptTag({ path: axeSource });
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    results[file] = r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.html) }));
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(results));
