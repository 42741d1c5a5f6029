/**
 * chosenCertificate(): the certificate OpenSSL sends, asked of a rehearsal on the same ClientHello,
 * is the one the real handshake on the same contexts sends: TLS 1.3 by signature algorithms, TLS 1.2
 * by cipher suite, and with an SNI context whose certificate Node adds to the SSL's (UseSNIContext()).
 * The staple of a server with an RSA and an ECDSA certificate depends on it (ssl_stapling.t).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { connect, createSecureContext, TLSSocket, type ConnectionOptions, type SecureContext } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { chosenCertificate } from '../../src/tls/certificate-choice.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');
const ec = { cert: pem('a-ec.crt'), key: pem('a-ec.key') };
const rsa = { cert: pem('a-rsa.crt'), key: pem('a-rsa.key') };
const otherRsa = { cert: pem('b-rsa.crt'), key: pem('b-rsa.key') };

interface Outcome {
  readonly rehearsed: string | undefined;
  readonly sent: string | undefined;
}

describe('chosenCertificate: the rehearsal picks what the handshake sends', () => {
  let server: Server;
  let port = 0;
  /** The contexts the next connection's handshake runs on. */
  let contexts: { initial: SecureContext; sni?: SecureContext } = { initial: createSecureContext() };
  const outcomes: ((outcome: Outcome) => void)[] = [];

  before(async () => {
    server = createServer((raw) => {
      raw.once('data', (hello: Buffer) => {
        raw.pause();
        const { initial, sni } = contexts;
        const report = outcomes.shift();
        const abort = new AbortController();
        void chosenCertificate(hello, initial, sni, abort.signal).then((rehearsed) => {
          raw.unshift(hello);
          const secure = new TLSSocket(raw, {
            isServer: true,
            secureContext: initial,
            ...(sni === undefined ? {} : { SNICallback: (_name: string, done: (err: Error | null, context: SecureContext) => void) => done(null, sni) }),
          });
          secure.once('secure', () => {
            report?.({ rehearsed: rehearsed?.toString('base64'), sent: secure.getX509Certificate()?.raw.toString('base64') });
            secure.end();
          });
          secure.on('error', () => report?.({ rehearsed: rehearsed?.toString('base64'), sent: undefined }));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    port = address.port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  /** One handshake: what the rehearsal chose and what was sent, as base64 DER (at most 10 s). */
  const handshake = (options: ConnectionOptions): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no handshake within 10 s')), 10_000);
      outcomes.push((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
      const client = connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
      client.on('error', () => undefined);
      client.resume();
    });

  const der = (certPem: string): string => new X509Certificate(certPem).raw.toString('base64');

  const cases: { name: string; options: ConnectionOptions; expected: string }[] = [
    { name: 'TLS 1.3, ECDSA signature algorithms', options: { sigalgs: 'ecdsa_secp256r1_sha256' }, expected: ec.cert },
    { name: 'TLS 1.3, RSA signature algorithms', options: { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, expected: rsa.cert },
    { name: 'TLS 1.2, an ECDHE-ECDSA suite', options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, expected: ec.cert },
    { name: 'TLS 1.2, an ECDHE-RSA suite', options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, expected: rsa.cert },
  ];
  for (const { name, options, expected } of cases) {
    it(`one context with both certificates: ${name}`, async () => {
      contexts = { initial: createSecureContext({ cert: [ec.cert, rsa.cert], key: [ec.key, rsa.key] }) };
      const outcome = await handshake(options);
      assert.equal(outcome.sent, der(expected));
      assert.equal(outcome.rehearsed, outcome.sent);
    });
  }

  it("an SNI context's certificate is added to the initial context's: the choice is among both", async () => {
    // Node's UseSNIContext() adds the SNI context's certificate over the one of its key type.
    contexts = { initial: createSecureContext(ec), sni: createSecureContext(otherRsa) };
    const ecdsa = await handshake({ servername: 'b.example', sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256' });
    assert.equal(ecdsa.sent, der(ec.cert));
    assert.equal(ecdsa.rehearsed, ecdsa.sent);
    const rsaOnly = await handshake({ servername: 'b.example', sigalgs: 'rsa_pss_rsae_sha256' });
    assert.equal(rsaOnly.sent, der(otherRsa.cert));
    assert.equal(rsaOnly.rehearsed, rsaOnly.sent);
  });

  it('a HelloRetryRequest: what the first ClientHello makes it choose is what is sent', async () => {
    // The server takes X25519 only and the client's key share is P-256's: OpenSSL asks again.
    contexts = { initial: createSecureContext({ cert: [ec.cert, rsa.cert], key: [ec.key, rsa.key], ecdhCurve: 'X25519' }) };
    for (const sigalgs of ['ecdsa_secp256r1_sha256', 'rsa_pss_rsae_sha256']) {
      const outcome = await handshake({ sigalgs, ecdhCurve: 'P-256:X25519' });
      assert.equal(outcome.rehearsed, outcome.sent);
    }
  });

  it('an aborted rehearsal resolves with nothing', async () => {
    const abort = new AbortController();
    abort.abort();
    assert.equal(await chosenCertificate(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), createSecureContext(ec), undefined, abort.signal), undefined);
  });
});
