/** `hitless certs selfsigned`, which `npm start` runs before its first start. */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';

describe('hitless certs selfsigned', () => {
  const dir = tempDir();
  after(() => dir.remove());
  const cert = join(dir.path, 'certs/localhost.crt');
  const key = join(dir.path, 'certs/localhost.key');

  it('writes a certificate for every name and its key with mode 0600', () => {
    const result = runHitless(['certs', 'selfsigned', 'localhost', '127.0.0.1', '::1', '--cert', cert, '--key', key, '--days', '30']);
    assert.equal(result.status, 0, result.stderr);
    const x509 = new X509Certificate(readFileSync(cert));
    assert.equal(x509.subject, 'CN=localhost');
    assert.equal(x509.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.ok(x509.checkPrivateKey(createPrivateKey(readFileSync(key))));
    assert.ok(x509.verify(x509.publicKey), 'not self-signed');
    const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, String(days));
    assert.equal(statSync(key).mode & 0o777, 0o600);
    assert.equal(result.stdout.includes('PRIVATE'), false);
  });

  it('leaves existing files alone with --if-missing', () => {
    const before = readFileSync(cert);
    const result = runHitless(['certs', 'selfsigned', 'localhost', '--cert', cert, '--key', key, '--if-missing']);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(readFileSync(cert), before);
  });

  it('refuses bad usage with exit 2', () => {
    assert.equal(runHitless(['certs', 'selfsigned', '--cert', cert, '--key', key]).status, 2);
    assert.equal(runHitless(['certs', 'selfsigned', 'a', '--cert', cert]).status, 2);
    assert.equal(runHitless(['certs', 'selfsigned', 'a', '--cert', cert, '--key', key, '--days', 'x']).status, 2);
    assert.equal(runHitless(['certs', 'frobnicate']).status, 2);
  });
});
