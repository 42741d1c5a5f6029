/**
 * The certificate store's checks and its files: every refusal names the problem and leaves the
 * store as it was; what it keeps is one 0600 file per name in a 0700 directory.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CertificateRefusedError, CertificateStore, checkCertificate, summaryOf } from '../../src/tls/certificate-store.js';
import { fixture } from './session-client.js';
import { tempDir } from '../helpers/tmp.js';

const pem = (name: string): string => readFileSync(fixture(name), 'latin1');

function refusal(name: string, cert: string, key: string, options: { force?: boolean } = {}): string {
  try {
    checkCertificate(name, cert, key, options);
  } catch (err) {
    assert.ok(err instanceof CertificateRefusedError, `not a refusal: ${String(err)}`);
    assert.equal(err.code, 'HITLESS_ERR_CERT_REFUSED');
    return err.message;
  }
  assert.fail('the certificate was accepted');
}

describe('certificate store checks', () => {
  it('accepts a certificate with its chain and sums it up without key material', () => {
    const { summary, stored } = checkCertificate('a.test', pem('a-rsa.fullchain.crt'), pem('a-rsa.key'));
    assert.equal(summary.name, 'a.test');
    assert.deepEqual(summary.names, ['a.test', 'www.a.test']);
    assert.equal(summary.chainLength, 1);
    assert.match(summary.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(JSON.stringify(summary).includes('PRIVATE KEY'), false);
    assert.deepEqual(summaryOf(stored), summary);
  });

  it('accepts a wildcard name for a wildcard certificate', () => {
    assert.equal(checkCertificate('*.w.test', pem('wildcard-ec.fullchain.crt'), pem('wildcard-ec.key')).summary.name, '*.w.test');
  });

  it('refuses a key that does not match', () => {
    assert.match(refusal('a.test', pem('a-rsa.fullchain.crt'), pem('b-rsa.key')), /private key does not match/);
  });

  it('refuses an unparsable certificate and a missing key', () => {
    assert.match(refusal('a.test', pem('broken.crt'), pem('a-rsa.key')), /certificate/i);
    assert.match(refusal('a.test', pem('a-rsa.crt'), ''), /No PEM private key/);
  });

  it('refuses expired and not-yet-valid certificates unless forced', () => {
    assert.match(refusal('a.test', pem('a-expired.fullchain.crt'), pem('a-expired.key')), /has expired/);
    assert.match(refusal('a.test', pem('a-not-yet.fullchain.crt'), pem('a-not-yet.key')), /not valid yet/);
    const forced = checkCertificate('a.test', pem('a-expired.fullchain.crt'), pem('a-expired.key'), { force: true });
    assert.ok(forced.warnings.some((warning) => warning.includes('has expired')));
  });

  it('refuses a certificate that does not cover the name, exact or wildcard', () => {
    assert.match(refusal('b.test', pem('a-rsa.fullchain.crt'), pem('a-rsa.key')), /does not cover "b.test"/);
    assert.match(refusal('*.a.test', pem('a-rsa.fullchain.crt'), pem('a-rsa.key')), /does not cover "\*.a.test"/);
  });

  it('refuses a chain that does not link', () => {
    const unlinked = pem('a-rsa.crt') + pem('other-intermediate.crt');
    assert.match(refusal('a.test', unlinked, pem('a-rsa.key')), /chain does not link/);
  });

  it('refuses names that are not lowercase DNS names', () => {
    for (const name of ['../etc/passwd', 'A.test', '127.0.0.1x/', '', 'a..test', '*.*.test', 'a.test/']) {
      assert.match(refusal(name, pem('a-rsa.fullchain.crt'), pem('a-rsa.key')), /Invalid certificate name/, name);
    }
  });

  it('never quotes the key in a refusal', () => {
    const key = pem('a-rsa.key');
    const body = key.split('\n').filter((line) => /^[A-Za-z0-9+/=]{16,}$/.test(line));
    const messages = [
      refusal('a.test', pem('b-rsa.fullchain.crt'), key),
      refusal('a.test', pem('a-rsa.fullchain.crt'), key.replace(/^MII/m, 'XXX')),
      refusal('b.test', pem('a-rsa.fullchain.crt'), key),
    ];
    for (const message of messages) for (const line of body) assert.equal(message.includes(line), false, message);
  });
});

describe('certificate store files', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('persists one 0600 file per name in a 0700 directory and reads it back', async () => {
    const dir = join(tmp.path, 'store');
    const store = new CertificateStore(dir);
    assert.deepEqual(store.load(), []);
    const { stored } = checkCertificate('a.test', pem('a-rsa.fullchain.crt'), pem('a-rsa.key'));
    assert.equal(await store.put(stored), false);
    assert.equal(await store.put(stored), true);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'a.test.pem')).mode & 0o777, 0o600);
    const again = new CertificateStore(dir);
    assert.deepEqual(again.load(), []);
    assert.deepEqual(again.list(), [stored]);
    await again.delete('a.test');
    const emptied = new CertificateStore(dir);
    assert.deepEqual(emptied.load(), []);
    assert.deepEqual(emptied.list(), []);
  });
});
