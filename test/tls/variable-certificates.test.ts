import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { errorOf, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');
const fingerprint = (name: string): string => new X509Certificate(pem(`${name}.crt`)).fingerprint256;

/** Handshakes with `servername`: the leaf's fingerprint, or the error's message. */
function leafOf(port: number, servername: string): Promise<{ fingerprint: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca: CA, checkServerIdentity: () => undefined }, () => {
      const leaf = socket.getPeerX509Certificate();
      socket.destroy();
      resolve({ fingerprint: leaf?.fingerprint256 ?? '' });
    });
    socket.once('error', (err) => resolve({ error: err.message }));
  });
}

/** Replaces a file as an operator's tool does: write beside it, rename over it. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('ssl_certificate with variables: configuration', () => {
  it('accepts $ssl_server_name and map variables, and refuses an unknown one as nginx does', () => {
    assert.equal(errorOf('http { server { ssl_certificate /c/$ssl_server_name.crt; ssl_certificate_key /c/$nope.key; } }'), 'unknown "nope" variable');
    assert.equal(errorOf('http { server { ssl_certificate /c/$.crt; ssl_certificate_key /c/a.key; } }'), 'invalid variable name in "/c/$.crt" in /x.conf:1');
    assert.equal(errorOf('http { server { ssl_certificate /c/${x.crt; ssl_certificate_key /c/a.key; } }'), 'the closing bracket in "x" variable is missing in /x.conf:1');
    assert.equal(errorOf('http { server { ssl_certificate /c/$ssl_server_name.crt; } }'), 'no "ssl_certificate_key" is defined for certificate "/c/$ssl_server_name.crt"');
    // The server's other settings are checked with the configuration, as nginx builds its SSL_CTX then.
    assert.equal(
      errorOf('http { server { ssl_certificate /c/$ssl_server_name.crt; ssl_certificate_key /c/$ssl_server_name.key; ssl_ciphers NOPE; } }'),
      'SSL_CTX_set_cipher_list("NOPE") failed (SSL: error:0A0000B9:SSL routines::no cipher match)',
    );
  });

  it('still refuses variables in names nginx reads as plain files', () => {
    assert.equal(errorOf('http { server { ssl_client_certificate /c/$ssl_server_name.crt; } }'), 'variables in "ssl_client_certificate" are not supported by hitless in /x.conf:1');
  });
});

describe('ssl_certificate with variables: handshakes', () => {
  let dir: TempDir;
  let served: Served;
  const port = (): number => served.ports.get('127.0.0.1:1443') ?? 0;
  const log = (): string => readFileSync(join(dir.path, 'error.log'), 'latin1');

  before(async () => {
    dir = tempDir({
      'certs/a.test.crt': pem('a-rsa.fullchain.crt'),
      'certs/a.test.key': pem('a-rsa.key'),
      'certs/b.test.crt': pem('b-ec.fullchain.crt'),
      'certs/b.test.key': pem('b-ec.key'),
      'mapped/b-by-map.crt': pem('b-rsa.fullchain.crt'),
      'mapped/b-by-map.key': pem('b-rsa.key'),
    });
    served = await serve(
      `http {
        access_log off;
        map $ssl_server_name $cert_name {
          mapped.test b-by-map;
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name _;
          ssl_certificate certs/$ssl_server_name.crt;
          ssl_certificate_key certs/$ssl_server_name.key;
          return 200 "$ssl_server_name";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name mapped.test;
          ssl_certificate ${dir.path}/mapped/$cert_name.crt;
          ssl_certificate_key ${dir.path}/mapped/$cert_name.key;
          return 200 "mapped";
        }
      }`,
      dir.path,
      new ErrorLog([{ file: join(dir.path, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    dir.remove();
  });

  it('serves the files the SNI name names, and a map of it', async () => {
    assert.deepEqual(await leafOf(port(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    assert.deepEqual(await leafOf(port(), 'b.test'), { fingerprint: fingerprint('b-ec') });
    assert.deepEqual(await leafOf(port(), 'mapped.test'), { fingerprint: fingerprint('b-rsa') });
  });

  it('fails the handshake for a name without files, logged at [error] as nginx says it', async () => {
    const reply = await leafOf(port(), 'c.test');
    assert.ok('error' in reply, 'the handshake fails');
    const path = join(dir.path, 'certs/c.test.crt');
    assert.match(
      log(),
      new RegExp(
        `\\[error\\] \\d+#0: cannot load certificate "${path}": BIO_new_file\\(\\) failed \\(SSL: error:80000002:system library::No such file or directory:calling fopen\\(${path}, r\\) error:10000080:BIO routines::no such file\\) while SSL handshaking, client: 127\\.0\\.0\\.1, server: 127\\.0\\.0\\.1:\\d+`,
      ),
    );
  });

  it('refuses an SNI name that would leave the directory, without opening a file', async () => {
    const reply = await leafOf(port(), '..a.test');
    assert.ok('error' in reply, 'the handshake fails');
    assert.doesNotMatch(log(), /\.\.a\.test\.crt/);
  });

  it('loads changed files on the next handshake, and keeps the previous pair while the key does not match the certificate', async () => {
    const crt = join(dir.path, 'certs/a.test.crt');
    const key = join(dir.path, 'certs/a.test.key');
    assert.deepEqual(await leafOf(port(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    // The certificate first: it does not match the key still in place.
    replace(crt, pem('a-rsa-2.fullchain.crt'));
    assert.deepEqual(await leafOf(port(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    assert.deepEqual(await leafOf(port(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    const mismatch = `[error] ${process.pid}#0: SSL_use_PrivateKey("${key}") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)`;
    assert.equal(log().split(mismatch).length - 1, 1, 'the mismatch is logged once');
    replace(key, pem('a-rsa-2.key'));
    assert.deepEqual(await leafOf(port(), 'a.test'), { fingerprint: fingerprint('a-rsa-2') });
  });

  it('fails the handshake once a file of a name is removed', async () => {
    const crt = join(dir.path, 'certs/b.test.crt');
    assert.deepEqual(await leafOf(port(), 'b.test'), { fingerprint: fingerprint('b-ec') });
    renameSync(crt, `${crt}.away`);
    try {
      assert.ok('error' in (await leafOf(port(), 'b.test')));
    } finally {
      renameSync(`${crt}.away`, crt);
    }
    assert.deepEqual(await leafOf(port(), 'b.test'), { fingerprint: fingerprint('b-ec') });
  });
});

describe('ssl_certificate_cache', () => {
  let dir: TempDir;
  let served: Served;
  const cachedPort = (): number => served.ports.get('127.0.0.1:1443') ?? 0;
  const smallPort = (): number => served.ports.get('127.0.0.1:1444') ?? 0;

  before(async () => {
    dir = tempDir({
      'certs/a.test.crt': pem('a-rsa.fullchain.crt'),
      'certs/a.test.key': pem('a-rsa.key'),
      'certs/b.test.crt': pem('b-ec.fullchain.crt'),
      'certs/b.test.key': pem('b-ec.key'),
      'certs/c.test.crt': pem('b-rsa.fullchain.crt'),
      'certs/c.test.key': pem('b-rsa.key'),
      'certs/d.test.crt': pem('a-rsa.fullchain.crt'),
      'certs/d.test.key': pem('a-rsa.key'),
    });
    served = await serve(
      `http {
        access_log off;
        ssl_certificate certs/$ssl_server_name.crt;
        ssl_certificate_key certs/$ssl_server_name.key;
        server { listen 127.0.0.1:1443 ssl; ssl_certificate_cache max=100 valid=1h; return 200 ok; }
        server { listen 127.0.0.1:1444 ssl; ssl_certificate_cache max=2 valid=1h inactive=1h; return 200 ok; }
      }`,
      dir.path,
      new ErrorLog([{ file: join(dir.path, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    dir.remove();
  });

  it('refuses what nginx refuses', () => {
    assert.equal(errorOf('http { ssl_certificate_cache valid=1s; }'), '"ssl_certificate_cache" must have the "max" parameter in /x.conf:1');
    assert.equal(errorOf('http { ssl_certificate_cache max=0; }'), 'invalid parameter "max=0" in /x.conf:1');
    assert.equal(errorOf('http { ssl_certificate_cache max=1 valid=x; }'), 'invalid parameter "valid=x" in /x.conf:1');
  });

  it('serves a cached pair while it is younger than valid, even after its files changed or went away', async () => {
    const crt = join(dir.path, 'certs/a.test.crt');
    const key = join(dir.path, 'certs/a.test.key');
    assert.deepEqual(await leafOf(cachedPort(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    replace(crt, pem('b-ec.fullchain.crt'));
    replace(key, pem('b-ec.key'));
    assert.deepEqual(await leafOf(cachedPort(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
    renameSync(crt, `${crt}.away`);
    assert.deepEqual(await leafOf(cachedPort(), 'a.test'), { fingerprint: fingerprint('a-rsa') });
  });

  it('drops the least recently used entries beyond max: a removed file then fails the handshake', async () => {
    const crt = join(dir.path, 'certs/b.test.crt');
    assert.deepEqual(await leafOf(smallPort(), 'b.test'), { fingerprint: fingerprint('b-ec') });
    renameSync(crt, `${crt}.away`);
    // Still cached: the certificate and the key are the two entries.
    assert.deepEqual(await leafOf(smallPort(), 'b.test'), { fingerprint: fingerprint('b-ec') });
    // c.test's two entries push b.test's out.
    assert.deepEqual(await leafOf(smallPort(), 'c.test'), { fingerprint: fingerprint('b-rsa') });
    assert.ok('error' in (await leafOf(smallPort(), 'b.test')), 'b.test is no longer cached and its file is gone');
    renameSync(`${crt}.away`, crt);
  });
});
