// The plain Node peer of the HTTP/2 benchmark: node:http2's secure server answering every stream
// with 200 "hello world\n" through the core API (stream.respond, no compatibility layer), TLS 1.3
// only, no session tickets and no session cache.
// Usage: node http2-hello.js <port> <cert.pem> <key.pem>
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';

const [port, cert, key] = process.argv.slice(2);
const body = Buffer.from('hello world\n');
const server = createSecureServer({ cert: readFileSync(String(cert)), key: readFileSync(String(key)), minVersion: 'TLSv1.3', secureOptions: constants.SSL_OP_NO_TICKET });
server.on('stream', (stream) => {
  stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': body.length });
  stream.end(body);
});
server.listen(Number(port), '127.0.0.1');
// An ordinary exit on SIGTERM, so that --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
