// Drives the reelfarm web monitor in Debian's headless Chromium (playwright-core, no
// browser download) through what an operator does, and prints what it saw as one JSON
// line; tests/web/test_browser.py starts the server, runs this, and checks the JSON.
//
//   node scenario.js '{"url": ..., "token": ..., "running": FILM, "paused": FILM, "out": DIR}'
//
// `running`: a long film that is rendering (cancelled from its page); `paused`: a film
// paused at submission (resumed from its page, watched to the end, then re-rendered).
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');
const { accessibility, tabOrder } = require('./a11y');

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

async function filmState(page) {
  return (await page.locator('#film-state').textContent()).split(':')[0].trim();
}

// Sample `read()` every 100 ms until `done(value)` or the timeout; returns the samples.
async function watch(read, done, timeoutMs) {
  const seen = [];
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    seen.push(value);
    if (done(value)) return { seen, done: true };
    if (Date.now() > end) return { seen, done: false };
    await new Promise((r) => setTimeout(r, 100));
  }
}

// `read()` once it has not changed for `quietMs` (or at the timeout).
async function settle(read, quietMs, timeoutMs) {
  let value = await read();
  let since = Date.now();
  const end = Date.now() + timeoutMs;
  while (Date.now() - since < quietMs && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await read();
    if (now !== value) { value = now; since = Date.now(); }
  }
  return value;
}

async function filmsPage(page, args, report) {
  await page.getByRole('link', { name: 'Films' }).click();
  const row = page.locator(`tr[data-film="${args.running}"]`);
  await row.waitFor();
  // The running film's frames change in the table without a reload.
  const text = () => row.locator('.frames-text').textContent();
  const first = await text();
  const live = await watch(text, (v) => v !== first, 90000);
  report.films_live = { first, last: live.seen[live.seen.length - 1], changed: live.done };
  // Sort by priority from the keyboard: focus the header button, press Enter (twice: descending).
  const sortButton = page.getByRole('button', { name: 'Sort by Priority' });
  await sortButton.focus();
  await page.keyboard.press('Enter');
  const ascending = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.film));
  await page.getByRole('button', { name: 'Sort by Priority' }).focus();
  await page.keyboard.press('Enter');
  const descending = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.film));
  report.sorted = { ascending, descending };
  report.a11y.films = await accessibility(page);
  report.tab.films = await tabOrder(page);
  report.screenshots.films = path.join(args.out, 'films.png');
  await page.screenshot({ path: report.screenshots.films, fullPage: true });
}

async function cancelFromPage(page, args, report) {
  await page.locator(`tr[data-film="${args.running}"] a`).click();
  await page.locator('#film-state').waitFor();
  const before = await filmState(page);
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Cancel film' }).click();
  const after = await watch(() => filmState(page), (s) => FINAL.includes(s), 60000);
  report.cancel = { before, after: after.seen[after.seen.length - 1] };
}

async function followFilm(page, args, report) {
  await page.goto(`${args.url}#/films/${args.paused}`);
  await page.locator('#film-state').waitFor();
  report.paused_state = await filmState(page);
  await page.getByRole('button', { name: 'Resume' }).click();
  const frames = () => page.locator('#frames-done').textContent();
  const run = await watch(async () => `${await filmState(page)} ${(await frames()).trim()}`,
    (v) => FINAL.includes(v.split(' ')[0]), 120000);
  report.progress = run.seen;
  // The preview shows a decoded frame (an <img> with pixels), and the chart has bars.
  await page.waitForFunction(() => {
    const img = document.querySelector('img.preview');
    return img && img.complete && img.naturalWidth > 0 && img.dataset.filmIndex !== undefined;
  }, null, { timeout: 30000 });
  report.preview = await page.locator('img.preview').evaluate((img) => ({
    width: img.naturalWidth, height: img.naturalHeight, alt: img.alt, film_index: Number(img.dataset.filmIndex),
  }));
  report.bars = await page.locator('svg.gantt rect.bar').evaluateAll((rects) => rects.map((r) => ({
    kind: r.dataset.kind, expert: r.dataset.expert, row: r.dataset.row })));
  await page.getByLabel('Rows').selectOption('workers');
  report.worker_rows = await page.locator('svg.gantt rect.bar').evaluateAll((rects) =>
    [...new Set(rects.map((r) => r.dataset.row))]);
  await page.getByLabel('Rows').selectOption('units');
  await page.locator('#download-mp4').waitFor({ timeout: 30000 });
  report.download_label = await page.locator('#download-mp4').textContent();
  report.a11y.film = await accessibility(page);
  report.tab.film = await tabOrder(page);
  report.screenshots.film = path.join(args.out, 'film.png');
  await page.screenshot({ path: report.screenshots.film, fullPage: true });
}

async function controls(page, args, report) {
  // A priority the API refuses: its message is shown.
  await page.getByLabel('Priority (0–100)').fill('101');
  await page.getByRole('button', { name: 'Set priority' }).click();
  await page.locator('#film-error').filter({ hasText: 'refused' }).waitFor();
  report.priority_error = await page.locator('#film-error').textContent();
  // Re-render frames 3..5 of the second scene; the film runs again and succeeds.
  const phasesBefore = await page.locator('svg.gantt rect.bar[data-kind="phase"]').count();
  await page.getByLabel('Scene').selectOption(args.rerender_scene);
  await page.getByLabel('First frame (0-based)').fill('3');
  await page.getByLabel('Last frame (0-based)').fill('5');
  await page.getByRole('button', { name: 'Re-render frames' }).click();
  const reopened = await watch(() => filmState(page), (s) => s !== 'SUCCEEDED', 30000);
  const again = await watch(() => filmState(page), (s) => s === 'SUCCEEDED', 90000);
  again.seen.unshift(...reopened.seen);
  const after = await settle(() => page.locator('svg.gantt rect.bar[data-kind="phase"]').count(), 1500, 30000);
  report.rerender = { states: [...new Set(again.seen)], phases_before: phasesBefore,
    phases_after: after, error: await page.locator('#film-error').textContent() };
}

async function poolsPage(page, args, report) {
  await page.getByRole('link', { name: 'Pools' }).click();
  const worker = page.locator('tr[data-worker]').first();
  await worker.waitFor();
  report.workers = await page.locator('tr[data-worker]').evaluateAll((rows) => rows.map((r) => ({
    id: r.dataset.worker, state: r.dataset.state, cells: [...r.cells].map((c) => c.textContent) })));
  report.split = await page.locator('.stack-row').evaluateAll((rows) => rows.map((r) => r.textContent));
  report.a11y.pools = await accessibility(page);
  report.tab.pools = await tabOrder(page);
  report.screenshots.pools = path.join(args.out, 'pools.png');
  await page.screenshot({ path: report.screenshots.pools, fullPage: true });
}

async function main() {
  const args = JSON.parse(process.argv[2]);
  const report = { a11y: {}, tab: {}, screenshots: {}, errors: [] };
  const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium', args: FLAGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => report.errors.push(e.message));
    page.setDefaultTimeout(30000);
    await page.goto(args.url);
    // Tokens are configured: the page asks for one before it shows anything.
    await page.getByText('Sign in with your API token').waitFor();
    report.signin_a11y = await accessibility(page);
    await page.getByLabel('API token').fill(args.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    report.whoami = await page.locator('#whoami').filter({ hasText: 'tenant' }).textContent();
    report.seconds = {};
    for (const step of [filmsPage, cancelFromPage, followFilm, controls, poolsPage]) {
      const t = Date.now();
      await step(page, args, report);
      report.seconds[step.name] = (Date.now() - t) / 1000;
    }
  } catch (e) {
    report.failure = String(e && e.stack ? e.stack : e);
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main();
