// Upload one file through Uppy's Dashboard (@uppy/tus) in headless Debian chromium.
//
// Usage: node uppy.mjs PAGE_URL FILE PROFILE_DIR [--kill-at BYTES]
// PAGE_URL is the test's page (index.html + bundle.js) with ?endpoint=…&token=….
// The browser profile (localStorage: tus-js-client's resume fingerprints) lives in
// PROFILE_DIR. With --kill-at, once that many bytes went out the upload is paused
// (its PATCH aborted mid-body), and after PROFILE_COMMIT_MS the whole browser is
// SIGKILLed and the process exits 137; run again to resume.
// Prints JSON lines: {"progress": bytes}, then {"complete": n, "failed": n}.
import { execFileSync } from 'node:child_process'
import { chromium } from 'playwright-core'

const [pageUrl, file, profile, ...flags] = process.argv.slice(2)
const killAt = flags[0] === '--kill-at' ? Number(flags[1]) : Infinity
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n')
// Chromium writes localStorage (where tus-js-client keeps the upload's URL) to the
// profile a few seconds after a change: a browser killed sooner forgets the upload,
// as any crashed browser would. The test is about resuming, so it waits that long.
const PROFILE_COMMIT_MS = 8000

function killBrowser() {
  // Playwright starts the browser in a process group of its own: kill all of it.
  const pids = execFileSync('pgrep', ['-P', String(process.pid)]).toString().trim().split('\n')
  for (const pid of pids) {
    try { process.kill(-Number(pid), 'SIGKILL') } catch { /* not a group leader */ }
  }
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
})
const page = await context.newPage()
if (Number.isFinite(killAt)) {
  // A slow uplink, so the upload is still under way when the harness pauses it.
  const devtools = await context.newCDPSession(page)
  await devtools.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024,
  })
}
let finish
const finished = new Promise((resolve) => { finish = resolve })
let killed = false
await page.exposeFunction('reportProgress', async (bytes) => {
  say({ progress: bytes })
  if (bytes >= killAt && !killed) {
    killed = true
    await page.evaluate(() => window.pauseUploads())
    await new Promise((resolve) => setTimeout(resolve, PROFILE_COMMIT_MS))
    killBrowser()
    process.exit(137)
  }
})
await page.exposeFunction('reportError', (error) => say({ error }))
await page.exposeFunction('reportComplete', (complete, failed) => {
  say({ complete, failed })
  finish(failed === 0 && complete === 1 ? 0 : 1)
})
page.on('pageerror', (error) => say({ pageerror: String(error) }))
await page.goto(pageUrl)
await page.locator('input.uppy-Dashboard-input').first().setInputFiles(file)
const timeout = setTimeout(() => finish(2), 120_000)
const code = await finished
clearTimeout(timeout)
await context.close()
process.exit(code)
