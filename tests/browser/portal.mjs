// Drives Debian's chromium (headless, through playwright-core) through the DLM portal as two
// users, the way a scientist would: log in, Autorun a C stencil recompiled with dlmcc, watch
// its live view gain points, download its output; the same job on a chosen node
// (Interactive); each bad input; the second user sees nothing of the first's. It takes a
// screenshot of every page, and prints one JSON object of what it found for tests/e2e/portal.rs
// to check (the byte comparison with the native run is done there). Any failed step throws:
// exit status 1 with the step named.
//
// Environment: PORTAL (http://HOST:PORT), USER1/PASSWORD1, USER2/PASSWORD2, SOURCE (the C
// stencil), CFLAGS, ARGS (space separated), MEMORY, OUTPUT (the result file's name), NODE
// (CLUSTER/NODE for Interactive), TOO_BIG (a file over the upload limit), SHOTS (a directory).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
};
const portal = env('PORTAL');
const shots = env('SHOTS');
const found = { steps: [] };
let step = 'start';

function note(name) {
    step = name;
    found.steps.push(name);
}

async function shot(page, name) {
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function login(context, user, password, screenshot) {
    const page = await context.newPage();
    await page.goto(`${portal}/login`);
    if (screenshot) await shot(page, 'login');
    await page.fill('#login-user', user);
    await page.fill('#login-password', password);
    await Promise.all([page.waitForNavigation(), page.click('#login-submit')]);
    const name = await page.textContent('#user-name');
    if (!name.includes(user)) throw new Error(`logged in as ${name}, not ${user}`);
    return page;
}

// Fills a job form (Autorun or Interactive) and submits it; returns the job's id from the page
// it lands on.
async function submitJob(page, { source, cflags, args, memory, output, inputs = [] }) {
    await page.setInputFiles('#program-files', source);
    await page.check('#dlmcc');
    await page.fill('#cflags', cflags);
    if (inputs.length) await page.setInputFiles('#input-files', inputs);
    await page.fill('#memory', memory);
    await page.fill('#args', args.join('\n'));
    await page.fill('#outputs', output);
    await Promise.all([page.waitForNavigation(), page.click('#run-button')]);
    const match = page.url().match(/\/jobs\/(\d+)$/);
    if (!match) {
        const error = await page.textContent('#form-error').catch(() => '(no #form-error)');
        throw new Error(`the job was not submitted: ${page.url()}: ${error}`);
    }
    return Number(match[1]);
}

async function points(page) {
    return Number(await page.getAttribute('#faults-plot', 'data-points'));
}

async function waitEnded(page, limitMs) {
    await page.waitForFunction(() => document.querySelector('#job-live')?.dataset.final === 'true', null, {
        timeout: limitMs,
    });
    return page.getAttribute('#job-state', 'data-state');
}

async function formError(page) {
    await page.waitForSelector('#form-error');
    return (await page.textContent('#form-error')).trim();
}

async function main() {
    fs.mkdirSync(shots, { recursive: true });
    const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
    try {
        const job = {
            source: env('SOURCE'), cflags: env('CFLAGS'), args: env('ARGS').split(' '),
            memory: env('MEMORY'), output: env('OUTPUT'),
        };
        note('log in as the first user');
        const alice = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = await login(alice, env('USER1'), env('PASSWORD1'), true);

        note('Autorun the stencil with recompile');
        await page.goto(`${portal}/autorun`);
        await page.setInputFiles('#program-files', job.source);
        await page.check('#dlmcc');
        await shot(page, 'autorun');
        const autorun = await submitJob(page, job);
        found.autorun = autorun;

        note('watch the live view gain points while it runs');
        await page.waitForFunction(() => Number(document.querySelector('#faults-plot')?.dataset.points) >= 2, null, {
            timeout: 120000,
        });
        const before = await points(page);
        const stateWhile = await page.getAttribute('#job-state', 'data-state');
        await page.waitForFunction((n) => Number(document.querySelector('#faults-plot').dataset.points) > n, before, {
            timeout: 60000,
        });
        found.live = { before, after: await points(page), state: stateWhile };
        await shot(page, 'job-live');
        found.autorunState = await waitEnded(page, 300000);
        found.autorunPlace = (await page.textContent('#job-place')).trim();

        note('download the output');
        await page.goto(`${portal}/downloads/${autorun}`);
        await shot(page, 'downloads');
        const output = await page.request.get(`${portal}/downloads/${autorun}/files/${job.output}`);
        if (!output.ok()) throw new Error(`download: ${output.status()}`);
        fs.writeFileSync(path.join(shots, '..', `autorun-${job.output}`), await output.body());
        const archive = await page.request.get(`${portal}/downloads/${autorun}/archive`);
        found.archiveBytes = (await archive.body()).length;

        note('the same job on a chosen node (Interactive)');
        await page.goto(`${portal}/interactive`);
        const node = env('NODE');
        await page.waitForSelector(`tr.node[data-place="${node}"]`);
        // Live data: the clusters' table is refreshed in place.
        const first = await page.getAttribute('#clusters', 'data-updated');
        await page.waitForFunction((t) => document.querySelector('#clusters').dataset.updated !== t, first, {
            timeout: 15000,
        });
        found.available = (await page.textContent(`tr.node[data-place="${node}"] [data-field=available]`)).trim();
        await shot(page, 'interactive');
        await page.check(`input[name=place][value="${node}"]`);
        const interactive = await submitJob(page, job);
        found.interactive = interactive;
        found.interactiveState = await waitEnded(page, 300000);
        found.interactivePlace = (await page.textContent('#job-place')).trim();
        const second = await page.request.get(`${portal}/downloads/${interactive}/files/${job.output}`);
        fs.writeFileSync(path.join(shots, '..', `interactive-${job.output}`), await second.body());
        await page.goto(`${portal}/jobs`);
        await shot(page, 'jobs');

        note('bad input');
        found.bad = {};
        await page.goto(`${portal}/autorun`);
        await page.setInputFiles('#program-files', env('TOO_BIG'));
        await page.fill('#memory', '64M');
        await Promise.all([page.waitForNavigation(), page.click('#run-button')]);
        found.bad.tooBig = await formError(page);
        await page.goto(`${portal}/autorun`);
        await page.setInputFiles('#program-files', job.source);
        await page.check('#dlmcc');
        await page.setInputFiles('#input-files', { name: '../evil.dat', mimeType: 'text/plain', buffer: Buffer.from('x') });
        await page.fill('#memory', '64M');
        await Promise.all([page.waitForNavigation(), page.click('#run-button')]);
        found.bad.dotDot = await formError(page);
        await page.goto(`${portal}/autorun`);
        await page.setInputFiles('#program-files', job.source);
        await page.check('#dlmcc');
        await page.fill('#outputs', '/etc/passwd');
        await page.fill('#memory', '64M');
        await Promise.all([page.waitForNavigation(), page.click('#run-button')]);
        found.bad.absolute = await formError(page);
        await page.goto(`${portal}/autorun`);
        await page.setInputFiles('#program-files', job.source);
        await page.check('#dlmcc');
        await page.fill('#memory', '64G');
        await Promise.all([page.waitForNavigation(), page.click('#run-button')]);
        found.bad.tooMuchMemory = await formError(page);
        const unknown = await page.goto(`${portal}/jobs/999999`);
        found.bad.unknownJob = { status: unknown.status(), text: (await page.textContent('#not-found-message')).trim() };

        note('the second user sees none of it');
        const bob = await browser.newContext();
        const other = await login(bob, env('USER2'), env('PASSWORD2'), false);
        await other.goto(`${portal}/jobs`);
        found.otherJobs = await other.locator('tr[id^=job-row-]').count();
        const direct = await other.goto(`${portal}/jobs/${autorun}`);
        found.otherDirect = { status: direct.status(), text: (await other.textContent('#not-found-message')).trim() };
        const file = await other.request.get(`${portal}/downloads/${autorun}/files/${job.output}`);
        found.otherFile = file.status();
        const api = await other.request.get(`${portal}/api/jobs/${autorun}`);
        found.otherApi = api.status();
        await other.goto(`${portal}/downloads`);
        found.otherFolders = await other.locator('tr[id^=folder-row-]').count();
    } finally {
        await browser.close();
    }
}

main()
    .then(() => {
        console.log(JSON.stringify(found));
    })
    .catch((error) => {
        console.log(JSON.stringify(found));
        console.error(`portal.mjs: step "${step}" failed: ${error.stack || error}`);
        process.exit(1);
    });
