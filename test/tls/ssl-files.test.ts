import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { errorOf, load, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

/** One HTTP/1.1 request over TLS, with a client certificate if given: the status, body and the leaf the server sent. */
function httpsGet(port: number, servername: string, client?: { cert: string; key: string }): Promise<{ status: number; body: string; leaf: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca: CA, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], ...client }, () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => (text += chunk));
    s.on('end', () =>
      resolve({
        status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0),
        body: text.slice(text.indexOf('\r\n\r\n') + 4),
        leaf: s.getPeerX509Certificate()?.fingerprint256 ?? '',
      }),
    );
    s.on('error', reject);
  });
}

describe('ssl_certificate_key store:file:... (nginx 1.29.0, OSSL_STORE)', () => {
  it('serves the key of a store:file: name, constant or with variables, and refuses other schemes at -t', async () => {
    const served = await serve(
      `http {
        access_log off;
        map $ssl_server_name $key { default a-rsa; }
        server { listen 127.0.0.1:1443 ssl; server_name static.test; ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key store:file:${FIXTURES}a-rsa.key; return 200 static; }
        server { listen 127.0.0.1:1443 ssl; server_name variable.test; ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key store:file:${FIXTURES}$key.encrypted.key; ssl_password_file ${FIXTURES}a-rsa.passwords; return 200 variable; }
      }`,
      FIXTURES,
    );
    try {
      const expected = new X509Certificate(pem('a-rsa.crt')).fingerprint256;
      assert.deepEqual(await httpsGet(served.port, 'static.test'), { status: 200, body: 'static', leaf: expected });
      assert.deepEqual(await httpsGet(served.port, 'variable.test'), { status: 200, body: 'variable', leaf: expected });
    } finally {
      await served.stop();
    }
    assert.equal(
      errorOf(`http { server { ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key store:pkcs11:token=x; } }`),
      'cannot load certificate key "store:pkcs11:token=x": hitless loads "store:file:..." keys only (Node has no OSSL_STORE for the other schemes) in /x.conf:1',
    );
  });
});

describe('ssl_password_file', () => {
  const server = (key: string, passwords?: string): string =>
    `http { server { ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}${key};${passwords === undefined ? '' : ` ssl_password_file ${FIXTURES}${passwords};`} } }`;

  it('opens an encrypted key with the passphrase that works, PKCS#8 or traditional, a wrong one tried first', () => {
    load(server('a-rsa.encrypted.key', 'a-rsa.passwords'));
    load(server('a-rsa.encrypted-traditional.key', 'a-rsa.passwords'));
    // A passphrase file does not hurt a key that needs none.
    load(server('a-rsa.key', 'wrong.passwords'));
  });

  it('refuses an encrypted key no passphrase opens, as nginx says it', () => {
    assert.equal(
      errorOf(server('a-rsa.encrypted.key', 'wrong.passwords')),
      `cannot load certificate key "${FIXTURES}a-rsa.encrypted.key": PEM_read_bio_PrivateKey() failed (SSL: error:1C800064:Provider routines::bad decrypt)`,
    );
    assert.equal(
      errorOf(server('a-rsa.encrypted.key')),
      `cannot load certificate key "${FIXTURES}a-rsa.encrypted.key": PEM_read_bio_PrivateKey() failed (SSL: error:07880109:common libcrypto routines::interrupted or cancelled error:04800068:PEM routines::bad password read)`,
    );
  });

  it('refuses a file that cannot be read, and a second one in a block', () => {
    assert.equal(errorOf('http { ssl_password_file /nonexistent.pass; }'), 'open() "/nonexistent.pass" failed (2: No such file or directory) in /x.conf:1');
    assert.equal(errorOf(`http { ssl_password_file ${FIXTURES}a-rsa.passwords; ssl_password_file ${FIXTURES}a-rsa.passwords; }`), '"ssl_password_file" directive is duplicate in /x.conf:1');
  });

  it('reads one passphrase a line: CR LF, empty lines skipped; an empty file gives the empty passphrase', () => {
    const dir = tempDir({ 'crlf.pass': '\r\none\r\n\ntwo', 'empty.pass': '\n\n' });
    try {
      const passwordsOf = (file: string): readonly string[] | undefined => load(`http { ssl_password_file ${dir.path}/${file}; }`).main.child('http')?.get('ssl_password_file')?.passwords;
      assert.deepEqual(passwordsOf('crlf.pass'), ['one', 'two']);
      assert.deepEqual(passwordsOf('empty.pass'), ['']);
    } finally {
      dir.remove();
    }
  });

  it('serves the certificate of an encrypted key, and opens one named with variables', async () => {
    const dir = tempDir({ 'a.test.crt': pem('a-rsa.fullchain.crt'), 'a.test.key': pem('a-rsa.encrypted.key') });
    const served = await serve(
      `http {
        access_log off;
        ssl_password_file ${FIXTURES}a-rsa.passwords;
        server { listen 127.0.0.1:1443 ssl; server_name static.test; ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.encrypted.key; return 200 static; }
        server { listen 127.0.0.1:1443 ssl; server_name a.test; ssl_certificate ${dir.path}/$ssl_server_name.crt; ssl_certificate_key ${dir.path}/$ssl_server_name.key; return 200 variable; }
      }`,
      FIXTURES,
    );
    try {
      const expected = new X509Certificate(pem('a-rsa.crt')).fingerprint256;
      assert.deepEqual(await httpsGet(served.port, 'static.test'), { status: 200, body: 'static', leaf: expected });
      assert.deepEqual(await httpsGet(served.port, 'a.test'), { status: 200, body: 'variable', leaf: expected });
    } finally {
      await served.stop();
      dir.remove();
    }
  });
});

describe('ssl_session_cache and ssl_session_timeout', () => {
  it('accepts what nginx accepts', () => {
    for (const value of ['off', 'none', 'builtin', 'builtin:1000', 'shared:SSL:10m', 'builtin:1000 shared:SSL:1m', 'shared:SSL:32k']) {
      const http = load(`http { ssl_session_cache ${value}; ssl_session_timeout 1h; }`).main.child('http');
      assert.ok(http?.get('ssl_session_cache'), value);
      assert.equal(http?.get('ssl_session_timeout'), 3_600_000);
    }
    const http = load('http { ssl_session_cache builtin:1000 shared:SSL:1m; }').main.child('http');
    assert.deepEqual(http?.get('ssl_session_cache'), { builtin: 1000, shared: { name: 'SSL', size: 1024 * 1024 } });
    assert.deepEqual(load('http { }').main.child('http')?.get('ssl_session_cache'), { builtin: 'none', shared: undefined });
  });

  it('refuses what nginx refuses, with its messages', () => {
    assert.equal(errorOf('http { ssl_session_cache sometimes; }'), 'invalid session cache "sometimes" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache builtin:many; }'), 'invalid session cache "builtin:many" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache builtin:; }'), 'invalid session cache "builtin:" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache shared:SSL; }'), 'invalid session cache "shared:SSL" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache shared::1m; }'), 'invalid session cache "shared::1m" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache shared:SSL:1x; }'), 'invalid session cache "shared:SSL:1x" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache shared:SSL:16k; }'), 'session cache "shared:SSL:16k" is too small in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_cache off none builtin; }'), 'invalid number of arguments in "ssl_session_cache" directive in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_timeout 5x; }'), '"ssl_session_timeout" directive invalid value in /x.conf:1');
  });
});

describe('ssl_crl: a revoked client certificate', () => {
  let dir: TempDir;
  let served: Served;
  const log = (): string => readFileSync(join(dir.path, 'error.log'), 'latin1');

  before(async () => {
    dir = tempDir();
    served = await serve(
      `http {
        log_format verify "$ssl_server_name $ssl_client_verify $status";
        access_log ${dir.path}/access.log verify;
        ssl_certificate a-rsa.fullchain.crt;
        ssl_certificate_key a-rsa.key;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name on.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          ssl_crl client-ca.crl;
          return 200 "$ssl_client_verify";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name optional.test;
          ssl_verify_client optional;
          ssl_client_certificate client-ca.crt;
          ssl_crl client-ca.crl;
          return 200 "$ssl_client_verify";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name nocrl.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          return 200 "$ssl_client_verify";
        }
      }`,
      FIXTURES,
      new ErrorLog([{ file: join(dir.path, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    dir.remove();
  });

  const client = (name: string): { cert: string; key: string } => ({ cert: pem(`${name}.crt`), key: pem(`${name}.key`) });

  it('on: is answered 400 "The SSL certificate error", logged with OpenSSL\'s 23', async () => {
    const reply = await httpsGet(served.port, 'on.test', client('client-revoked'));
    assert.equal(reply.status, 400);
    assert.match(reply.body, /<title>400 The SSL certificate error<\/title>/);
    assert.match(log(), /\[info\] .*client SSL certificate verify error: \(23:certificate revoked\) while reading client request headers, client: 127\.0\.0\.1, server: on\.test/);
  });

  it('sets $ssl_client_verify to FAILED:certificate revoked, and optional refuses it too', async () => {
    const reply = await httpsGet(served.port, 'optional.test', client('client-revoked'));
    assert.equal(reply.status, 400);
    const lines = readFileSync(join(dir.path, 'access.log'), 'latin1').trim().split('\n');
    // nginx logs the 400 it sends for a 495, not the 495.
    assert.ok(lines.includes('on.test FAILED:certificate revoked 400'), lines.join('\n'));
    assert.ok(lines.includes('optional.test FAILED:certificate revoked 400'), lines.join('\n'));
  });

  it('a certificate the CRL does not list verifies; without ssl_crl the revoked one does too', async () => {
    assert.equal((await httpsGet(served.port, 'on.test', client('client-a'))).body, 'SUCCESS');
    assert.equal((await httpsGet(served.port, 'optional.test', client('client-a'))).body, 'SUCCESS');
    assert.equal((await httpsGet(served.port, 'nocrl.test', client('client-revoked'))).body, 'SUCCESS');
  });
});
