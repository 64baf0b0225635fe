// Opens one URL in headless Chromium (Debian's, via playwright-core), takes a full-page
// screenshot, and prints JSON: the HTTP status, every request the page made, those outside
// the page's origin, console errors, and the data-* attributes of every element with a
// data-value. Usage: node check.mjs URL SCREENSHOT.png (URL may be file:///...)
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
// A file:// page may load only file: and data: URLs; a served page only its own origin.
const origin = url.startsWith('file:') ? 'file:' : new URL(url).origin;
const browser = await chromium.launch({
  executablePath: process.env.KPI_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  const response = await page.goto(url, { waitUntil: 'networkidle' });
  await page.screenshot({ path: screenshot, fullPage: true });
  const values = await page.$$eval('[data-value]', (els) => els.map((e) => ({ ...e.dataset })));
  const outside = requests.filter((r) => !r.startsWith(origin) && !r.startsWith('data:'));
  console.log(JSON.stringify({ status: response.status(), requests, outside, errors, values }));
} finally {
  await browser.close();
}
