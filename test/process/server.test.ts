/**
 * A server run from code through the public export list (src/index.ts): started from a
 * configuration's text, a certificate put from code is served on the next TLS handshake for its
 * name, a bad one is refused, and a deleted one gives the server's own back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { CertificateRefusedError, ErrorLog, startServer, type RunningServer } from '../../src/index.js';
import { freePort } from '../e2e/helpers/masters.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url);
const path = (name: string): string => new URL(name, fixtures).pathname;
const pem = (name: string): string => readFileSync(path(name), 'utf8');

/** The subject CN and the body of one HTTPS request for `/` with SNI `servername`. */
function fetchOverTls(port: number, servername: string): Promise<{ cn: string; body: string }> {
  return new Promise((resolve, reject) => {
    // The server's own certificate does not cover b.test: the test reads which one came, not whether it fits.
    const socket = connect({ host: '127.0.0.1', port, servername, ca: pem('ca.crt'), checkServerIdentity: () => undefined }, () => {
      socket.end(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve({ cn: String(socket.getPeerCertificate().subject.CN), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('a server started from code', () => {
  let server: RunningServer;
  let port: number;

  before(async () => {
    port = await freePort();
    server = await startServer({
      prefix: '/tmp',
      log: new ErrorLog([]),
      configText: `events {}
        http {
          access_log off;
          server {
            listen 127.0.0.1:${port} ssl;
            server_name a.test b.test;
            ssl_certificate ${path('a-rsa.fullchain.crt')};
            ssl_certificate_key ${path('a-rsa.key')};
            return 200 "served";
          }
        }`,
    });
  });
  after(async () => {
    await server?.close();
  });

  it('listens where the configuration says and serves its own certificate', async () => {
    assert.deepEqual(server.addresses, [{ key: `127.0.0.1:${port}`, port }]);
    const { cn, body } = await fetchOverTls(port, 'b.test');
    assert.match(cn, /a\.test/);
    assert.equal(body, 'served');
  });

  it('serves a certificate put from code on the next handshake for its name', async () => {
    const result = server.putCertificate('b.test', pem('b-rsa.fullchain.crt'), pem('b-rsa.key'));
    assert.deepEqual(result.warnings, []);
    assert.match((await fetchOverTls(port, 'b.test')).cn, /b\.test/);
    // Another name keeps the server's own.
    assert.match((await fetchOverTls(port, 'a.test')).cn, /a\.test/);
  });

  it('refuses a certificate whose key does not match, and keeps serving the one before', async () => {
    assert.throws(() => server.putCertificate('b.test', pem('b-rsa.fullchain.crt'), pem('a-rsa.key')), CertificateRefusedError);
    assert.match((await fetchOverTls(port, 'b.test')).cn, /b\.test/);
  });

  it('gives the server\'s own certificate back once the stored one is deleted', async () => {
    server.deleteCertificate('b.test');
    assert.match((await fetchOverTls(port, 'b.test')).cn, /a\.test/);
  });
});
