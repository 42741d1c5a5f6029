/**
 * Handshakes whose server the ClientHello already settles (issue 20): hitless leaves Node's
 * certificate callback (SNICallback, 'OCSPRequest') off for them, and must still answer what the
 * callback would have: a certificate of the store for the name, put or deleted while serving, the
 * certificate of the server the name selects, `$ssl_server_name`, and a handshake without SNI.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { localServingState } from '../../src/http/serving-state.js';
import { serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');
const fingerprint = (name: string): string => new X509Certificate(pem(name)).fingerprint256;

/** One request over TLS with `servername` (none when undefined): the leaf's fingerprint and the body (at most 10 s). */
function fetchOver(port: number, servername: string | undefined): Promise<{ leaf: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    const chunks: Buffer[] = [];
    socket.once('secureConnect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${servername ?? 'none'}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('end', () => {
      const leaf = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      const text = Buffer.concat(chunks).toString('latin1');
      socket.destroy();
      resolve({ leaf, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

describe('handshakes the ClientHello settles: no certificate callback, same answers', () => {
  let one: Served;
  let two: Served;
  const state = localServingState();

  before(async () => {
    // One server on the address: every name settles on its certificates, unless the store has one.
    one = await serve(
      `http { access_log off; server {
        listen 127.0.0.1:1443 ssl; server_name a.test;
        ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.key;
        return 200 "sni=$ssl_server_name";
      } }`,
      FIXTURES,
      undefined,
      state,
    );
    // Two servers with certificates of their own: b.test's name does not settle on the default's.
    two = await serve(
      `http { access_log off;
        server { listen 127.0.0.1:1443 ssl default_server; server_name a.test;
          ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.key; return 200 "a $ssl_server_name"; }
        server { listen 127.0.0.1:1443 ssl; server_name b.test;
          ssl_certificate ${FIXTURES}b-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}b-rsa.key; return 200 "b $ssl_server_name"; }
        server { listen 127.0.0.1:1443 ssl; server_name c.test; return 200 "c $ssl_server_name"; }
      }`,
      FIXTURES,
    );
  });
  after(async () => {
    await one.stop();
    await two.stop();
  });

  it('serves the server certificate with $ssl_server_name, and without SNI', async () => {
    assert.deepEqual(await fetchOver(one.port, 'a.test'), { leaf: fingerprint('a-rsa.crt'), body: 'sni=a.test' });
    // $ssl_server_name is the name as sent (SSL_get_servername()), the lookup ignores case.
    assert.deepEqual(await fetchOver(one.port, 'Other.Test'), { leaf: fingerprint('a-rsa.crt'), body: 'sni=Other.Test' });
    assert.deepEqual(await fetchOver(one.port, undefined), { leaf: fingerprint('a-rsa.crt'), body: 'sni=' });
  });

  it('answers a name of the certificate store with the stored certificate from the next handshake on, and drops it when deleted', async () => {
    state.tls.certificates.put({ name: 'b.test', cert: pem('b-rsa.fullchain.crt'), key: pem('b-rsa.key') });
    try {
      assert.deepEqual(await fetchOver(one.port, 'b.test'), { leaf: fingerprint('b-rsa.crt'), body: 'sni=b.test' });
      assert.equal((await fetchOver(one.port, 'a.test')).leaf, fingerprint('a-rsa.crt'));
    } finally {
      state.tls.certificates.delete('b.test');
    }
    assert.equal((await fetchOver(one.port, 'b.test')).leaf, fingerprint('a-rsa.crt'));
  });

  it('still selects the certificate of the server a name picks, and the default\'s for a server without one', async () => {
    assert.deepEqual(await fetchOver(two.port, 'b.test'), { leaf: fingerprint('b-rsa.crt'), body: 'b b.test' });
    assert.deepEqual(await fetchOver(two.port, 'a.test'), { leaf: fingerprint('a-rsa.crt'), body: 'a a.test' });
    assert.deepEqual(await fetchOver(two.port, 'c.test'), { leaf: fingerprint('a-rsa.crt'), body: 'c c.test' });
    assert.deepEqual(await fetchOver(two.port, undefined), { leaf: fingerprint('a-rsa.crt'), body: 'a ' });
  });
});
