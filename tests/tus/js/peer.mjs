// The peer for bench/tus.py: @tus/server with @tus/file-store on 127.0.0.1.
// Usage: node peer.mjs DIRECTORY   — prints {"port": n} once listening.
import http from 'node:http'
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'

const server = new Server({ path: '/files', datastore: new FileStore({ directory: process.argv[2] }) })
const httpServer = http.createServer((req, res) => server.handle(req, res))
httpServer.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + '\n')
})
