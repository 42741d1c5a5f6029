/** Preflight: reading the material, and every check that runs before a byte is written. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CertificateInputError, readCertificateMaterial, Redactor, type CertificateInput } from '../../src/tls/material.js';
import { covers, coversWildcard, preflight } from '../../src/tls/preflight.js';
import { fixture } from '../deploy/helpers/nginx.js';

const read = (name: string): Buffer => readFileSync(fixture(name));

function input(cert: string, key: string, chain?: string): CertificateInput {
  return { certificate: read(cert), key: read(key), ...(chain === undefined ? {} : { chain: read(chain) }), labels: { certificate: cert, key, chain: chain ?? 'chain' } };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CertificateInputError, String(err));
    assert.equal(err.code, 'HITLESS_ERR_CERT_INPUT');
    return err.message;
  }
  assert.fail('not refused');
}

const check = (cert: string, key: string, names: string[], chain?: string) => preflight(readCertificateMaterial(input(cert, key, chain)), { names });

describe('preflight', () => {
  it('accepts a leaf, its key and its chain, and says what it checked', () => {
    const result = check('a-rsa.crt', 'a-rsa.key', ['a.test', 'www.a.test'], 'chain.crt');
    assert.deepEqual(result.checks.slice(0, 2), ['private key matches the certificate', 'chain of 1 links the leaf to "hitless test intermediate"']);
    assert.match(result.checks.join('\n'), /covers "a\.test", "www\.a\.test"/);
    assert.deepEqual(result.warnings, []);
  });

  it('reads a fullchain file as leaf and chain', () => {
    const material = readCertificateMaterial(input('a-ec.fullchain.crt', 'a-ec.key'));
    assert.equal(material.chain.length, 1);
    assert.deepEqual(material.fullchainPem, read('a-ec.fullchain.crt'));
    assert.deepEqual(material.leafPem, read('a-ec.crt'));
  });

  it('warns when no chain is given for a leaf a CA issued', () => {
    assert.match(check('a-ec.crt', 'a-ec.key', ['a.test']).warnings.join(), /No chain given/);
  });

  it('refuses a key that does not match', () => {
    assert.match(refusal(() => check('a-rsa.crt', 'mismatched.key', ['a.test'])), /^The private key does not match the certificate "a\.test"$/);
    assert.match(refusal(() => check('a-rsa.crt', 'a-rsa-2.key', ['a.test'])), /does not match/);
  });

  it('refuses broken PEM, naming the file and never quoting it', () => {
    assert.match(refusal(() => check('broken.crt', 'a-rsa.key', ['a.test'])), /^Invalid certificate in "broken\.crt": .*bad base64 decode/);
    const keyMessage = refusal(() => check('a-ec.crt', 'broken.key', ['a.test']));
    assert.match(keyMessage, /^Invalid private key in "broken\.key"/);
    for (const line of read('broken.key').toString().split('\n').slice(1, -2)) assert.equal(keyMessage.includes(line), false);
    assert.match(refusal(() => readCertificateMaterial({ certificate: read('a-ec.key'), key: read('a-ec.key') })), /holds a PEM "PRIVATE KEY" block/);
    assert.match(refusal(() => readCertificateMaterial({ certificate: read('a-ec.crt'), key: read('a-ec.crt') })), /No PEM private key in "key"/);
  });

  it('refuses a chain that does not link, and a chain given twice', () => {
    assert.match(refusal(() => check('a-ec.crt', 'a-ec.key', ['a.test'], 'other-intermediate.crt')), /chain does not link: certificate #1 of the chain "hitless test other-intermediate" did not issue "a\.test"/);
    assert.match(refusal(() => check('a-ec.fullchain.crt', 'a-ec.key', ['a.test'], 'chain.crt')), /already holds a chain/);
  });

  it('refuses certificates outside their validity', () => {
    assert.match(refusal(() => check('a-expired.crt', 'a-expired.key', ['a.test'], 'chain.crt')), /has expired: valid until .*2021/);
    assert.match(refusal(() => check('a-not-yet.crt', 'a-not-yet.key', ['a.test'], 'chain.crt')), /is not valid yet: valid from .*2090/);
    const material = readCertificateMaterial(input('a-rsa.crt', 'a-rsa.key', 'chain.crt'));
    const late = new Date(Date.parse(material.leaf.validTo) - 2.5 * 86_400_000);
    assert.match(preflight(material, { names: ['a.test'], now: late }).warnings.join(), /expires in 2 days/);
  });

  it('checks names as TLS clients do, wildcards included', () => {
    assert.match(refusal(() => check('a-rsa.crt', 'a-rsa.key', ['b.test'])), /does not cover "b\.test": it covers DNS:a\.test, DNS:www\.a\.test/);
    const wildcard = readCertificateMaterial(input('wildcard-ec.crt', 'wildcard-ec.key')).leaf;
    assert.equal(covers(wildcard, 'x.w.test'), true);
    assert.equal(covers(wildcard, 'x.y.w.test'), false, 'a wildcard covers one label (RFC 6125)');
    assert.equal(coversWildcard(wildcard, '*.w.test'), true);
    assert.equal(coversWildcard(wildcard, '.w.test'), true);
    assert.equal(coversWildcard(wildcard, 'www.w.*'), false);
  });
});

describe('Redactor', () => {
  it('removes every base64 line of the key, wrapped or not', () => {
    const key = read('a-rsa.key');
    const lines = key.toString().split('\n').filter((line) => /^[A-Za-z0-9+/=]{16,}$/.test(line));
    const redactor = new Redactor([key]);
    const text = `before ${lines[3] ?? ''} middle ${lines.join('')} after`;
    assert.equal(redactor.redact(text), 'before [redacted] middle [redacted] after');
  });
});
