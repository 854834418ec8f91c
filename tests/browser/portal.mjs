// The DLM portal in a real Chromium, run by tests/e2e/portal.rs (which starts the emulated WAN
// and the portal, and says everything through the environment). Each step prints its name; an
// assertion that fails ends the script non-zero. The last line printed is JSON for the Rust
// side: {"autorun": ID, "interactive": ID, "node": "CLUSTER/NODE"}.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const env = process.env;
const URL = env.PORTAL_URL;
const JOB_LIMIT = 180_000;
// Chromium as root, headless, without the background traffic it would send to hosts this
// machine cannot reach (../shared notes of the platform).
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

fs.mkdirSync(env.SCREENSHOTS, { recursive: true });
fs.mkdirSync(env.DOWNLOADS, { recursive: true });

function step(name) {
  console.log(`step: ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(env.SCREENSHOTS, `${name}.png`), fullPage: true });
}

/// Posts the form whose submit button is `button` and returns the response to the POST.
async function submit(page, button) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest()),
    page.click(button),
  ]);
  await page.waitForLoadState('load');
  return response;
}

async function login(context, user, password) {
  const page = await context.newPage();
  await page.goto(`${URL}/`);
  assert.match(new globalThis.URL(page.url()).pathname, /^\/login/, 'a page without a session goes to the login');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('#login-submit')]);
  assert.equal((await page.textContent('#user-name')).trim(), user);
  return page;
}

/// Fills the job form of the page it is on: the stencil's C source, rebuilt with dlmcc.
async function fillStencil(page, { memory = env.MEMORY, outputs = 'result.txt', program = env.STENCIL } = {}) {
  await page.setInputFiles('#program-files', program);
  await page.check('#dlmcc');
  await page.fill('#cflags', `-O2 ${env.CFLAGS}`);
  await page.fill('#memory', memory);
  await page.fill('#args', `${env.SWEEPS}\nresult.txt`);
  await page.fill('#outputs', outputs);
}

function jobIdOf(page) {
  const match = new globalThis.URL(page.url()).pathname.match(/^\/jobs\/(\d+)$/);
  assert.ok(match, `a submitted job opens its page, not ${page.url()}`);
  return Number(match[1]);
}

async function runFrom(page, button) {
  const response = await submit(page, button);
  assert.equal(response.status(), 303, `the form was refused: ${await page.textContent('body')}`);
  return jobIdOf(page);
}

/// Waits until `test` (run in the page, with `arg`) is true. Not page.waitForFunction: that
/// evaluates a string in the page, which the portal's Content-Security-Policy forbids (as it
/// should); the test runs under the same policy as a user's browser.
async function until(page, test, arg, timeout, what) {
  const started = Date.now();
  for (;;) {
    if (await page.evaluate(test, arg)) return;
    if (Date.now() - started >= timeout) {
      await page.screenshot({ path: path.join(env.DOWNLOADS, 'failure.png'), fullPage: true });
      assert.fail(`${what}: not within ${timeout} ms; the page (${page.url()}): ${await jobText(page)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/// What a job's page says, for a failure's message.
async function jobText(page) {
  const text = async (sel) => ((await page.$(sel)) ? (await page.textContent(sel)).trim().slice(-2000) : '-');
  const plot = await page.$eval('#faults-plot', (c) => c.dataset.points).catch(() => '-');
  return `state ${await text('#job-state')}, outcome ${await text('#job-outcome')}, place ${await text('#job-place')}, `
    + `points ${plot}, stats-none ${await text('#stats-none')}, live-error ${await text('#live-error')}\n`
    + `stdout: ${await text('#stdout-tail')}\nstderr: ${await text('#stderr-tail')}`;
}

const points = (page) => page.$eval('#faults-plot', (c) => Number(c.dataset.points || 0));
const state = (page) => page.$eval('#job-state', (e) => e.dataset.state);

/// Follows the job's live view until it has ended: while it runs, its plot must gain points
/// without the page reloading. Takes the live view's screenshot while it runs.
async function watchLive(page, shotName) {
  await page.evaluate(() => { window.dlmTestMarker = 1; });
  const ended = () => document.querySelector('#job-live').dataset.final === 'true';
  await until(page, () => document.querySelector('#job-state').dataset.state === 'running'
    || document.querySelector('#job-live').dataset.final === 'true', null, JOB_LIMIT, 'the job running');
  assert.ok(!(await page.evaluate(ended)), `the job ended before it was seen running: ${await jobText(page)}`);
  await until(page, () => Number(document.querySelector('#faults-plot').dataset.points || 0) >= 2
    && document.querySelector('#job-state').dataset.state === 'running', null, JOB_LIMIT, 'two points while it runs');
  const first = await points(page);
  await until(page, (n) => Number(document.querySelector('#faults-plot').dataset.points) > n, first, 30_000, 'the plot gaining a point');
  assert.equal(await state(page), 'running', 'the plot gained its points while the job ran');
  assert.ok(Number(await page.getAttribute('#memory-bar', 'value')) > 0, 'local memory in use is shown');
  assert.ok((await page.$$('#servers-bars .bar')).length > 0, 'bytes per memory server are shown');
  await shot(page, shotName);
  await untilEnded(page);
}

/// Waits until the job's page says it has ended (without a reload), and that it is done.
async function untilEnded(page) {
  await until(page, () => document.querySelector('#job-live').dataset.final === 'true', null, JOB_LIMIT, 'the job ending');
  assert.equal(await state(page), 'done', `the job ended ${await page.textContent('#job-outcome')}`);
  assert.equal(await page.evaluate(() => window.dlmTestMarker), 1, 'the live view updated without a reload');
}

/// Downloads the job's result through its Downloads folder, into DOWNLOADS/NAME.
async function downloadResult(page, id, name, shotName) {
  await Promise.all([page.waitForURL(`${URL}/downloads/${id}`), page.click('#job-files')]);
  if (shotName) await shot(page, shotName);
  const link = page.locator('#folder-files a.file-link', { hasText: 'result.txt' });
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  await download.saveAs(path.join(env.DOWNLOADS, name));
  const [archive] = await Promise.all([page.waitForEvent('download'), page.click('#folder-archive')]);
  const tar = path.join(env.DOWNLOADS, `job-${id}.tar`);
  await archive.saveAs(tar);
  assert.equal(fs.readFileSync(tar).subarray(0, `job-${id}/`.length).toString(), `job-${id}/`);
}

async function autorun(page) {
  step('autorun');
  await page.click('#nav-autorun');
  await page.check('#mode-local-first');
  await fillStencil(page);
  await shot(page, 'autorun');
  const id = await runFrom(page, '#run-button');
  step(`autorun: job ${id} live`);
  await watchLive(page, 'job-live');
  await downloadResult(page, id, 'autorun-result.txt', 'downloads');
  return id;
}

/// The Interactive page updates live; the job goes on the node picked there.
async function interactive(page) {
  step('interactive');
  await page.click('#nav-interactive');
  const updated = () => page.$eval('#clusters', (e) => e.dataset.updated || '');
  const before = await updated();
  await until(page, (b) => (document.querySelector('#clusters').dataset.updated || '') !== b, before, 15_000, 'a live update of the clusters');
  const radio = page.locator('tr.node[data-place^="c3/"] input[name=place]').first();
  const place = await radio.getAttribute('value');
  const available = await page.textContent(`tr.node[data-place="${place}"] [data-field=available]`);
  assert.match(available, /\d/, `node ${place} shows its available memory`);
  await radio.check();
  await fillStencil(page);
  await shot(page, 'interactive');
  const id = await runFrom(page, '#run-button');
  step(`interactive: job ${id} on ${place}`);
  await page.evaluate(() => { window.dlmTestMarker = 1; });
  await untilEnded(page);
  assert.ok((await page.textContent('#job-place')).includes(place.split('/')[1]), 'it ran on the chosen node');
  await downloadResult(page, id, 'interactive-result.txt', null);
  await page.click('#nav-jobs');
  await shot(page, 'jobs');
  return { id, place };
}

/// Each bad input is refused with its message and its status.
async function badInputs(page) {
  const refused = async (what, status, message, fill) => {
    step(`bad input: ${what}`);
    await page.click('#nav-autorun');
    await fill();
    const response = await submit(page, '#run-button');
    assert.equal(response.status(), status, `${what}: ${await page.textContent('body')}`);
    assert.ok((await page.textContent('#form-error')).includes(message),
      `${what}: the message was ${await page.textContent('#form-error')}`);
  };
  await refused('an output path with ..', 400, 'a name may not hold', () => fillStencil(page, { outputs: '../x' }));
  await refused('an absolute output path', 400, 'a name may not hold',
    () => fillStencil(page, { outputs: '/etc/passwd' }));
  await refused('more memory than the clusters could hold', 507, 'the most any cluster could ever give one job is',
    () => fillStencil(page, { memory: '1T' }));
  await refused('an upload over the limit', 413, 'The upload is too large',
    () => fillStencil(page, { program: env.TOO_LARGE }));
  step('bad input: an unknown job');
  const unknown = await page.goto(`${URL}/jobs/999999`);
  assert.equal(unknown.status(), 404);
  assert.ok(await page.isVisible('#not-found'));
}

/// The second user sees none of the first's jobs or files, even at their URLs.
async function otherUser(context, jobs) {
  step('the second user');
  const page = await login(context, env.USER_B, env.PASSWORD_B);
  await page.click('#nav-jobs');
  assert.ok(await page.isVisible('#no-jobs'), 'the second user has no jobs listed');
  await page.click('#nav-downloads');
  assert.equal(await page.locator('#downloads-table tr[id^="folder-row-"]').count(), 0);
  for (const id of jobs) {
    for (const route of [`/jobs/${id}`, `/downloads/${id}`, `/downloads/${id}/files/result.txt`,
      `/downloads/${id}/archive`, `/api/jobs/${id}`]) {
      const response = await page.request.get(`${URL}${route}`);
      assert.equal(response.status(), 404, `${route} for the second user`);
    }
  }
  await page.goto(`${URL}/jobs/${jobs[0]}`);
  assert.ok(await page.isVisible('#not-found'));
  await Promise.all([page.waitForURL((u) => u.pathname.startsWith('/login')), page.click('#logout-button')]);
}

async function main() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  try {
    const first = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    step('login');
    const loginPage = await first.newPage();
    await loginPage.goto(`${URL}/login`);
    await shot(loginPage, 'login');
    await loginPage.fill('#login-user', env.USER_A);
    await loginPage.fill('#login-password', 'not-the-password');
    await loginPage.click('#login-submit');
    await loginPage.waitForSelector('#login-error');
    assert.ok((await loginPage.textContent('#login-error')).includes('the user name or the password is wrong'));
    await loginPage.close();
    const page = await login(first, env.USER_A, env.PASSWORD_A);
    const autorunId = await autorun(page);
    const { id: interactiveId, place } = await interactive(page);
    await badInputs(page);
    const second = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await otherUser(second, [autorunId, interactiveId]);
    console.log(JSON.stringify({ autorun: autorunId, interactive: interactiveId, node: place }));
  } finally {
    await browser.close();
  }
}

await main();
