// The client of bench/tus.py: tus-js-client uploads files to one tus endpoint.
// Usage: node bench.mjs ENDPOINT TOKEN CONCURRENCY PARALLEL_UPLOADS FILE...
// Uploads the files, CONCURRENCY at a time, and prints {"seconds": s, "bytes": n}.
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, token, concurrency, parallelUploads, ...files] = process.argv.slice(2)

function send(file) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
      parallelUploads: Number(parallelUploads),
      storeFingerprintForResuming: false,
      retryDelays: [],
      onSuccess: resolve,
      onError: reject,
    })
    upload.start()
  })
}

const queue = [...files]
let bytes = 0
const started = process.hrtime.bigint()
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (queue.length) {
      const file = queue.shift()
      await send(file)
      bytes += fs.statSync(file).size
    }
  }),
)
const seconds = Number(process.hrtime.bigint() - started) / 1e9
process.stdout.write(JSON.stringify({ seconds, bytes }) + '\n')
