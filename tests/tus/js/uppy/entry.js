// Uppy's Dashboard with @uppy/tus, bundled from node_modules (no CDN) by uppy.mjs.
// The page reads the endpoint and token from its query string and reports to the
// test harness through functions it exposes on window.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Tus from '@uppy/tus'

const params = new URLSearchParams(window.location.search)
const uppy = new Uppy({ autoProceed: true })
  .use(Dashboard, { inline: true, target: '#uppy' })
  .use(Tus, {
    endpoint: params.get('endpoint'),
    headers: { Authorization: `Bearer ${params.get('token')}` },
    chunkSize: Number(params.get('chunkSize')) || Infinity,
    retryDelays: [0, 500, 1000, 2000],
    removeFingerprintOnSuccess: true,
  })
window.pauseUploads = () => uppy.pauseAll()
uppy.on('upload-progress', (file, progress) => window.reportProgress(progress.bytesUploaded))
uppy.on('upload-error', (file, error) => window.reportError(String(error)))
uppy.on('complete', (result) =>
  window.reportComplete(result.successful.length, result.failed.length),
)
