/**
 * `ssl_protocols` of the server SNI selects (nginx 1.29.2, after Debian's 1.22: hitless alone).
 * OpenSSL picks the version before Node's SNICallback runs, so hitless used to negotiate the
 * default server's versions for every name; the ClientHello's name now picks the context first.
 */
import assert from 'node:assert/strict';
import { connect, type SecureVersion } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/** The version a handshake with `servername` and at most `maxVersion` agrees on, or the error's code (at most 10 s). */
function versionOf(port: number, servername: string, maxVersion: SecureVersion = 'TLSv1.3'): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => {
      resolve(socket.getProtocol() ?? '');
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('ssl_protocols of the server SNI selects', () => {
  let served: Served;

  before(async () => {
    served = await serve(
      `http {
        access_log off;
        ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.key;
        server { listen 127.0.0.1:1443 ssl default_server; server_name one.test; ssl_protocols TLSv1.2; return 200 one; }
        server { listen 127.0.0.1:1443 ssl; server_name two.test; ssl_protocols TLSv1.3; return 200 two; }
      }`,
      FIXTURES,
    );
  });
  after(async () => {
    await served.stop();
  });

  it("negotiates the selected server's versions, not the default's", async () => {
    assert.equal(await versionOf(served.port, 'one.test'), 'TLSv1.2');
    assert.equal(await versionOf(served.port, 'two.test'), 'TLSv1.3');
    assert.match(await versionOf(served.port, 'two.test', 'TLSv1.2'), /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
    assert.equal(await versionOf(served.port, 'other.test'), 'TLSv1.2');
  });
});
