import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { escapedCertificate, rfc2253Name } from '../../src/tls/client-verify.js';
import { errorOf, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

/** One HTTP/1.1 request over TLS, with the client certificate `client` (its fullchain and key) if given. */
function httpsGet(port: number, servername: string, path: string, client?: { cert: string; key: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca: CA, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], ...client }, () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => (text += chunk));
    s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
    s.on('error', reject);
  });
}

const withCert = (name: string, chain = false): { cert: string; key: string } => ({
  cert: pem(`${name}${chain ? '.fullchain' : ''}.crt`),
  key: pem(`${name}.key`),
});

describe('ssl_verify_client: mutual TLS answered at the HTTP level', () => {
  let served: Served;
  let dir: string;
  const port = (): number => served.ports.get('127.0.0.1:1443') ?? 0;
  const log = (): string => readFileSync(join(dir, 'error.log'), 'latin1');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-mtls-'));
    served = await serve(
      `http {
        access_log off;
        ssl_certificate a-rsa.fullchain.crt;
        ssl_certificate_key a-rsa.key;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name on.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial|$ssl_client_fingerprint|$ssl_client_escaped_cert";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name optional.test;
          ssl_verify_client optional;
          ssl_trusted_certificate client-ca.crt;
          return 200 "$ssl_client_verify|$ssl_client_s_dn|";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name noca.test;
          ssl_verify_client optional_no_ca;
          return 200 "$ssl_client_verify|$ssl_client_s_dn";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name depth1.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca-bundle.crt;
          return 200 "$ssl_client_verify";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name depth2.test;
          ssl_verify_client on;
          ssl_verify_depth 2;
          ssl_client_certificate client-ca.crt;
          return 200 "$ssl_client_verify $ssl_client_s_dn";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name off.test;
          return 200 "[$ssl_client_verify]";
        }
      }`,
      FIXTURES,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('on: no certificate gets 400 "No required SSL certificate was sent", logged as nginx', async () => {
    const reply = await httpsGet(port(), 'on.test', '/');
    assert.equal(reply.status, 400);
    assert.match(reply.body, /<title>400 No required SSL certificate was sent<\/title>/);
    assert.match(log(), /\[info\] .*client sent no required SSL certificate while reading client request headers, client: 127\.0\.0\.1, server: on\.test, request: "GET \/ HTTP\/1\.1", host: "on\.test"/);
  });

  it('on: a certificate from the CA gets 200 with the $ssl_client_* variables', async () => {
    const reply = await httpsGet(port(), 'on.test', '/', withCert('client-a'));
    assert.equal(reply.status, 200);
    const cert = new X509Certificate(pem('client-a.crt'));
    const [verify, subject, issuer, serial, fingerprint, escaped] = reply.body.split('|');
    assert.equal(verify, 'SUCCESS');
    assert.equal(subject, 'CN=client-a,OU=clients,O=hitless\\, Inc.,C=US');
    assert.equal(issuer, 'CN=hitless test client-ca,O=hitless');
    assert.equal(serial, cert.serialNumber);
    assert.equal(fingerprint, cert.fingerprint.replaceAll(':', '').toLowerCase());
    assert.equal(decodeURIComponent(escaped ?? ''), cert.toString());
    assert.match(escaped ?? '', /^-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9%]+-----END%20CERTIFICATE-----%0A$/);
  });

  it('on: a certificate from another CA gets 400 "The SSL certificate error", logged with OpenSSL\'s number', async () => {
    const reply = await httpsGet(port(), 'on.test', '/', withCert('client-foreign'));
    assert.equal(reply.status, 400);
    assert.match(reply.body, /<title>400 The SSL certificate error<\/title>/);
    assert.match(log(), /client SSL certificate verify error: \(21:unable to verify the first certificate\) while reading client request headers, client: 127\.0\.0\.1, server: on\.test/);
  });

  it('optional: no certificate passes with $ssl_client_verify NONE and empty names; a good one verifies; a bad one is 495', async () => {
    assert.deepEqual(await httpsGet(port(), 'optional.test', '/'), { status: 200, body: 'NONE||' });
    assert.deepEqual(await httpsGet(port(), 'optional.test', '/', withCert('client-a')), { status: 200, body: 'SUCCESS|CN=client-a,OU=clients,O=hitless\\, Inc.,C=US|' });
    assert.equal((await httpsGet(port(), 'optional.test', '/', withCert('client-foreign'))).status, 400);
  });

  it('optional_no_ca: a certificate no CA vouches for passes, and $ssl_client_verify says why it failed', async () => {
    assert.deepEqual(await httpsGet(port(), 'noca.test', '/', withCert('client-foreign', true)), {
      status: 200,
      body: 'FAILED:self-signed certificate in certificate chain|CN=client-foreign,OU=clients,O=hitless\\, Inc.,C=US',
    });
    assert.deepEqual(await httpsGet(port(), 'noca.test', '/'), { status: 200, body: 'NONE|' });
  });

  it('ssl_verify_depth: 1 refuses a certificate from an intermediate (22), 2 accepts it', async () => {
    assert.equal((await httpsGet(port(), 'depth1.test', '/', withCert('client-via-intermediate'))).status, 400);
    assert.match(log(), /client SSL certificate verify error: \(22:certificate chain too long\) while reading client request headers, client: 127\.0\.0\.1, server: depth1\.test/);
    assert.deepEqual(await httpsGet(port(), 'depth2.test', '/', withCert('client-via-intermediate', true)), {
      status: 200,
      body: 'SUCCESS CN=client-via-intermediate,OU=clients,O=hitless\\, Inc.,C=US',
    });
    // A client cert signed by the root itself is within depth 1.
    assert.equal((await httpsGet(port(), 'depth1.test', '/', withCert('client-a'))).body, 'SUCCESS');
  });

  it('off: no certificate is asked for, $ssl_client_verify is NONE', async () => {
    assert.deepEqual(await httpsGet(port(), 'off.test', '/', withCert('client-a')), { status: 200, body: '[NONE]' });
  });
});

describe('ssl_verify_client: configuration', () => {
  const cert = `ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.key;`;

  it('refuses on and optional without a CA file, as nginx 1.27 says it; optional_no_ca needs none', () => {
    const message = 'no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client';
    assert.equal(errorOf(`http { server { ${cert} ssl_verify_client on; } }`), message);
    assert.equal(errorOf(`http { ssl_verify_client optional; server { ${cert} } }`), message);
    assert.throws(() => errorOf(`http { server { ${cert} ssl_verify_client optional_no_ca; } }`), /no error for/);
    assert.throws(() => errorOf(`http { server { ${cert} ssl_verify_client on; ssl_trusted_certificate ${FIXTURES}client-ca.crt; } }`), /no error for/);
  });

  it('checks the values of ssl_verify_client and ssl_verify_depth', () => {
    assert.equal(errorOf('http { ssl_verify_client maybe; }'), 'invalid value "maybe" in /x.conf:1');
    assert.equal(errorOf('http { ssl_verify_depth -1; }'), '"ssl_verify_depth" directive invalid number in /x.conf:1');
    assert.equal(errorOf('http { ssl_verify_client on off; }'), 'invalid number of arguments in "ssl_verify_client" directive in /x.conf:1');
  });

  it('refuses a CA file that does not exist, as nginx says it', () => {
    assert.match(errorOf(`http { server { ${cert} ssl_verify_client on; ssl_client_certificate /nonexistent-ca.crt; } }`), /^cannot load certificate "\/nonexistent-ca\.crt": BIO_new_file\(\) failed/);
  });
});

describe('ssl_verify_client: values', () => {
  it('prints names as RFC 2253 (most specific first, escapes, bytes above 0x7f as \\XX)', () => {
    assert.equal(rfc2253Name('C=US\nO=hitless\\, Inc.\nCN=a'), 'CN=a,O=hitless\\, Inc.,C=US');
    assert.equal(rfc2253Name('CN=é'), 'CN=\\C3\\A9');
    assert.equal(rfc2253Name(''), '');
  });

  it('escapes the PEM as nginx\'s URI component table does', () => {
    const cert = new X509Certificate(pem('client-a.crt'));
    const escaped = escapedCertificate(cert);
    assert.ok(!/[+/=\n ]/.test(escaped));
    assert.equal(decodeURIComponent(escaped), cert.toString());
  });
});
