#!/usr/bin/env node
// The upstream of the stream benchmark: a TCP echo server on 127.0.0.1:<port>, its own process so
// that it does not share a CPU with the load generator. Usage: node echo-upstream.js <port>
import { createServer } from 'node:net';

const port = Number(process.argv[2]);
createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
}).listen(port, '127.0.0.1');
