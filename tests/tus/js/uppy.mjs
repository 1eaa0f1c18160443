// Upload one file through Uppy's Dashboard (@uppy/tus) in headless Debian chromium.
//
// Usage: node uppy.mjs PAGE_URL FILE PROFILE_DIR [--kill-at BYTES]
// PAGE_URL is the test's page (index.html + bundle.js) with ?endpoint=…&token=….
// The browser profile (localStorage: tus-js-client's resume fingerprints) lives in
// PROFILE_DIR. With --kill-at the browser and this process are SIGKILLed mid-PATCH
// once that many bytes went out (uploads are throttled by DevTools network emulation
// so that the kill lands mid-body and after the browser has written localStorage);
// run again to resume.
// Prints JSON lines: {"progress": bytes}, then {"complete": n, "failed": n}.
import fs from 'node:fs'
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
// Every process this one started (the browser and its helpers), from /proc.
function descendants(root) {
  const parents = new Map()
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {}
  }
  const found = []
  const todo = [root]
  while (todo.length) {
    const parent = todo.pop()
    for (const [pid, ppid] of parents) if (ppid === parent) { found.push(pid); todo.push(pid) }
  }
  return found
}
const started = Date.now()
await page.exposeFunction('reportProgress', (bytes) => {
  say({ progress: bytes })
  if (bytes >= killAt && Date.now() - started > 6000) {
    for (const pid of descendants(process.pid)) try { process.kill(pid, 'SIGKILL') } catch {}
    process.kill(process.pid, 'SIGKILL')
  }
})
await page.exposeFunction('reportError', (error) => say({ error }))
await page.exposeFunction('reportComplete', (complete, failed) => {
  say({ complete, failed })
  finish(failed === 0 && complete === 1 ? 0 : 1)
})
page.on('pageerror', (error) => say({ pageerror: String(error) }))
if (killAt !== Infinity) {
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 400 * 1024,
  })
}
await page.goto(pageUrl)
await page.locator('input.uppy-Dashboard-input').first().setInputFiles(file)
const timeout = setTimeout(() => finish(2), 120_000)
const code = await finished
clearTimeout(timeout)
await context.close()
process.exit(code)
