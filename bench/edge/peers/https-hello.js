// The plain Node peer of the HTTPS benchmark: node:https answering every request with 200
// "hello world\n", TLS 1.3 only, no session tickets (SSL_OP_NO_TICKET) and no session cache (Node
// caches server sessions only for a 'newSession' listener, and there is none).
// Usage: node https-hello.js <port> <cert.pem> <key.pem>
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, cert, key] = process.argv.slice(2);
const body = Buffer.from('hello world\n');
const server = createServer(
  { cert: readFileSync(String(cert)), key: readFileSync(String(key)), minVersion: 'TLSv1.3', secureOptions: constants.SSL_OP_NO_TICKET },
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  },
);
// nginx's keepalive_timeout in the benchmark's configuration, so that idle connections stay open.
server.keepAliveTimeout = 300_000;
server.listen(Number(port), '127.0.0.1');
// An ordinary exit on SIGTERM, so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
