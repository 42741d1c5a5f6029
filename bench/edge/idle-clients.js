// Opens many TLS keep-alive connections to one server and leaves them idle, for the memory figure
// of bench/edge/: each connection completes its handshake and one `GET /` over HTTP/1.1, then
// stays open. Prints "established <n>" on stdout once every connection has had its response, and
// holds them until it is told to stop (SIGTERM) or its stdin closes.
// Usage: node idle-clients.js <port> <count>
import { connect } from 'node:tls';

const [port, count] = process.argv.slice(2).map(Number);
/** Handshakes in flight at once: enough to keep the server busy, few enough not to time out. */
const IN_FLIGHT = 64;
const sockets = [];
let opened = 0;
let established = 0;

function openOne() {
  if (opened >= Number(count)) return;
  opened++;
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' });
  sockets.push(socket);
  let received = '';
  let answered = false;
  socket.setEncoding('latin1');
  socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
  socket.on('data', function onData(chunk) {
    received += chunk;
    // The benchmark's servers all answer "hello world\n" with a Content-Length.
    if (!received.endsWith('hello world\n')) return;
    socket.off('data', onData);
    answered = true;
    established++;
    if (established === count) process.stdout.write(`established ${established}\n`);
    openOne();
  });
  socket.on('error', (err) => {
    process.stderr.write(`connection ${sockets.indexOf(socket)}: ${err.message}\n`);
    process.exit(1);
  });
  socket.on('close', () => {
    process.stderr.write(answered ? 'the server closed an idle connection\n' : 'the server closed a connection before its response\n');
    process.exit(1);
  });
}

for (let i = 0; i < IN_FLIGHT; i++) openOne();
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0)).resume();
