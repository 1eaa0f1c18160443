// Drives the portal's admin in Debian's chromium: log in, open the cleanup dashboard,
// press "Dry run" and "Run cleanup now", wait for both runs to finish, open their
// pages, and screenshot every page at 1280 px. Called by test_operator_console.py:
//   node operator_console.js BASE_URL USERNAME PASSWORD SCREENSHOT_DIR
// Prints one JSON object: what it saw.
const path = require('path');
const { chromium } = require('playwright-core');

const [baseUrl, username, password, shots] = process.argv.slice(2);
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const seen = { screenshots: [], runs: [], offsite: [] };

async function shot(page, name) {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  seen.screenshots.push(file);
}

async function pressOnDashboard(page, label) {
  await page.goto(`${baseUrl}/admin/portal/cleanupdashboard/`);
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: label }).click()]);
  return (await page.locator('.messagelist').innerText()).trim();
}

async function finishedAdminRuns(page) {
  await page.goto(`${baseUrl}/admin/portal/cleanuprun/?trigger__exact=admin`);
  const rows = page.locator('#result_list tbody tr');
  const runs = [];
  for (let i = 0; i < await rows.count(); i++) {
    const row = rows.nth(i);
    runs.push({
      href: await row.locator('th a, td a').first().getAttribute('href'),
      status: (await row.locator('.portal-status').innerText()).trim(),
      mode: (await row.locator('.portal-mode').innerText()).trim(),
    });
  }
  return runs;
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // The admin must work offline: note any request that leaves the test server.
    page.on('request', (request) => {
      if (!request.url().startsWith(baseUrl) && !request.url().startsWith('data:')) {
        seen.offsite.push(request.url());
      }
    });
    await page.goto(`${baseUrl}/admin/login/?next=/admin/`);
    await shot(page, '01-login');
    await page.fill('#id_username', username);
    await page.fill('#id_password', password);
    await Promise.all([page.waitForNavigation(), page.click('input[type=submit]')]);
    await shot(page, '02-admin-index');
    seen.indexLinksDashboard = await page.locator('a[href="/admin/portal/cleanupdashboard/"]').count() > 0;

    await page.goto(`${baseUrl}/admin/portal/cleanupdashboard/`);
    seen.dashboardTitle = await page.title();
    seen.tiles = (await page.locator('.portal-tile h3').allTextContents()).map((t) => t.trim());
    seen.charts = await page.locator('svg.portal-chart').count();
    await shot(page, '03-dashboard');

    seen.dryRunMessage = await pressOnDashboard(page, 'Dry run');
    await shot(page, '04-after-dry-run');
    seen.runMessage = await pressOnDashboard(page, 'Run cleanup now');
    await shot(page, '05-after-run-cleanup-now');

    // Queued runs finish in the worker: reload the runs list until both are done.
    const deadline = Date.now() + 90_000;
    let runs = [];
    while (Date.now() < deadline) {
      runs = await finishedAdminRuns(page);
      if (runs.length >= 2 && runs.every((run) => !['running', 'queued'].includes(run.status))) break;
      await page.waitForTimeout(1000);
    }
    await shot(page, '06-cleanup-runs');
    for (const run of runs) {
      await page.goto(`${baseUrl}${run.href}`);
      run.stepRows = await page.locator('table.portal-steps tbody tr').count();
      run.steps = await page.locator('table.portal-steps tbody td:first-child').allInnerTexts();
      seen.runs.push(run);
      await shot(page, `07-run-${run.mode.replace(' ', '-')}`);
    }

    await page.goto(`${baseUrl}/admin/portal/cleanupdashboard/`);
    seen.lastRunTile = (await page.locator('.portal-tile').first().innerText()).trim();
    await shot(page, '08-dashboard-after-runs');
    for (const [name, url] of [
      ['09-upload-sessions', '/admin/portal/uploadsession/'],
      ['10-upload-files', '/admin/portal/uploadfile/'],
      ['11-api-tokens', '/admin/portal/apitoken/'],
      ['12-cleanup-control', '/admin/portal/cleanupcontrol/'],
    ]) {
      await page.goto(`${baseUrl}${url}`);
      seen[name] = await page.locator('#content h1').innerText();
      await shot(page, name);
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen));
})().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
