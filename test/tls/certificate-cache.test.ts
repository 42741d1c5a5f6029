/** nginx's cache of per-connection certificates (ngx_ssl_cache_connection_fetch()): what it keeps, what it reads again. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CertificateCache, loadConnectionCertificate } from '../../src/tls/certificate-cache.js';
import { readPasswordFile } from '../../src/tls/certificate-files.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');
const cn = (text: string): string => new X509Certificate(text).subject;

describe('CertificateCache', () => {
  const dir = tempDir({ 'plain.crt': pem('a-rsa.crt'), 'plain.key': pem('a-rsa.key'), 'enc.crt': pem('a-rsa.crt'), 'enc.key': pem('a-rsa.encrypted.key') });
  after(() => dir.remove());
  const replace = (name: string, text: string): void => {
    writeFileSync(join(dir.path, `${name}.tmp`), text);
    renameSync(join(dir.path, `${name}.tmp`), join(dir.path, name));
  };
  const paths = (name: string): { cert: string; key: string } => ({ cert: join(dir.path, `${name}.crt`), key: join(dir.path, `${name}.key`) });

  it('keeps a pair while it is younger than valid', async () => {
    const cache = new CertificateCache({ max: 10, valid: 3600, inactive: 3600 });
    assert.match(cn((await loadConnectionCertificate(paths('plain'), cache, undefined)).cert), /CN=a\.test/);
    replace('plain.crt', pem('b-ec.crt'));
    replace('plain.key', pem('b-ec.key'));
    assert.match(cn((await loadConnectionCertificate(paths('plain'), cache, undefined)).cert), /CN=a\.test/);
    // Without a cache, the files as they are.
    assert.match(cn((await loadConnectionCertificate(paths('plain'), undefined, undefined)).cert), /CN=b\.test/);
  });

  it('never keeps a key that needed a passphrase, and fetches a pair that no longer matches once more past the cache', async () => {
    const cache = new CertificateCache({ max: 10, valid: 3600, inactive: 3600 });
    const passwords = readPasswordFile(`${FIXTURES}a-rsa.passwords`);
    assert.match(cn((await loadConnectionCertificate(paths('enc'), cache, passwords)).cert), /CN=a\.test/);
    replace('enc.crt', pem('b-ec.crt'));
    replace('enc.key', pem('b-ec.key'));
    // The certificate is cached, the key is read again: they do not match, so both are reloaded.
    const loaded = await loadConnectionCertificate(paths('enc'), cache, passwords);
    assert.match(cn(loaded.cert), /CN=b\.test/);
    assert.equal(loaded.key.pem, pem('b-ec.key'));
  });
});
