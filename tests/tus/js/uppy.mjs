// Upload one file through Uppy's Dashboard (@uppy/tus) in headless Debian chromium.
//
// Usage: node uppy.mjs PAGE_URL FILE PROFILE_DIR [--kill-at BYTES]
// PAGE_URL is the test's page (index.html + bundle.js) with ?endpoint=…&token=….
// The browser profile (localStorage: tus-js-client's resume fingerprints) lives in
// PROFILE_DIR. With --kill-at the tab is closed mid-PATCH once that many bytes went
// out and the process exits 137, as a killed client; run again to resume.
// Prints JSON lines: {"progress": bytes}, then {"complete": n, "failed": n}.
import { chromium } from 'playwright-core'

const [pageUrl, file, profile, ...flags] = process.argv.slice(2)
const killAt = flags[0] === '--kill-at' ? Number(flags[1]) : Infinity
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n')

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
})
const page = await context.newPage()
let finish
const finished = new Promise((resolve) => { finish = resolve })
let killed = false
await page.exposeFunction('reportProgress', async (bytes) => {
  say({ progress: bytes })
  if (bytes >= killAt && !killed) {
    killed = true
    await page.close({ runBeforeUnload: false })
    finish(137)
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
