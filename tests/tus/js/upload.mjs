// Upload one file with tus-js-client in Node, resuming from a URL store.
//
// Usage: node upload.mjs ENDPOINT TOKEN FILE URL_STORE [--parallel N] [--kill-at BYTES]
// Prints JSON lines: {"resumed": n} once, {"progress": bytes} as bytes go out, then
// {"done": url}. With --kill-at the process SIGKILLs itself once that many bytes were
// sent: a crash in the middle of a PATCH body, not a polite abort.
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, token, file, store, ...flags] = process.argv.slice(2)
const option = (name, fallback) => {
  const i = flags.indexOf(name)
  return i === -1 ? fallback : Number(flags[i + 1])
}
const parallel = option('--parallel', 1)
const killAt = option('--kill-at', Infinity)
const say = (line) => process.stdout.write(JSON.stringify(line) + '\n')

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  parallelUploads: parallel,
  urlStorage: new tus.FileUrlStorage(store),
  removeFingerprintOnSuccess: true,
  retryDelays: [0, 500, 1000, 2000, 4000],
  onProgress: (sent) => {
    say({ progress: sent })
    if (sent >= killAt) process.kill(process.pid, 'SIGKILL')
  },
  onSuccess: () => {
    say({ done: upload.url })
    process.exit(0)
  },
  onError: (error) => {
    say({ error: String(error) })
    process.exit(1)
  },
})

const previous = await upload.findPreviousUploads()
say({ resumed: previous.length })
if (previous.length) upload.resumeFromPreviousUpload(previous[0])
upload.start()
