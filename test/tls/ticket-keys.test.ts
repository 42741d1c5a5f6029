/**
 * Session ticket keys: nginx's key files, keys shared by separately built contexts (as two workers
 * build theirs), a rotation of the master's keys, after which a ticket under the replaced key still
 * resumes and is renewed under the new one, and several ssl_session_ticket_key files, of which the
 * first encrypts and every one decrypts (`ngx_ssl_ticket_key_callback()`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localServingState, type ServingState } from '../../src/http/serving-state.js';
import { createTicketKey, readTicketKeyFile } from '../../src/tls/ticket-keys.js';
import { errorOf, load, serve, type Served } from '../http/helpers.js';
import { fixture, getWithSession } from './session-client.js';

const dir = mkdtempSync(join(tmpdir(), 'hitless-tickets-'));
const bytes = (length: number, from = 0): Buffer => Buffer.from(Array.from({ length }, (_, i) => (from + i) % 256));
writeFileSync(join(dir, '48.key'), bytes(48));
writeFileSync(join(dir, '80.key'), bytes(80));
writeFileSync(join(dir, '47.key'), bytes(47));
writeFileSync(join(dir, 'x.key'), bytes(48, 100));
writeFileSync(join(dir, 'y.key'), bytes(80, 200));

const conf = (...ticketKeys: string[]): string => `http {
  access_log off;
  server {
    listen 127.0.0.1:1443 ssl;
    server_name a.test;
    ssl_certificate ${fixture('a-rsa.fullchain.crt')};
    ssl_certificate_key ${fixture('a-rsa.key')};
    ${ticketKeys.map((file) => `ssl_session_ticket_key ${file};`).join(' ')}
    return 200 "ok";
  }
}`;

after(() => rmSync(dir, { recursive: true, force: true }));

describe('ssl_session_ticket_key files', () => {
  it('reads a 48-byte file as nginx: name, AES-128 key, HMAC secret', () => {
    const key = readTicketKeyFile({ written: '48.key', path: join(dir, '48.key') });
    assert.deepEqual(key, { name: bytes(16), aes: bytes(16, 16), hmac: bytes(16, 32) });
  });

  it('reads an 80-byte file as nginx (name, 32-byte HMAC, AES-256), of whose AES key the first 16 bytes encrypt', () => {
    const key = readTicketKeyFile({ written: '80.key', path: join(dir, '80.key') });
    assert.deepEqual(key, { name: bytes(16), hmac: bytes(32, 16), aes: bytes(16, 48) });
  });

  it('warns at -t that an 80-byte key encrypts with AES-128, not AES-256; a 48-byte key draws no warning', () => {
    const warnings = (file: string): string[] => load(conf(join(dir, file))).warnings.map((warning) => warning.message);
    assert.ok(warnings('80.key').some((message) => message.includes('is an 80-byte key: hitless encrypts tickets with AES-128-CBC')), warnings('80.key').join('\n'));
    assert.ok(!warnings('48.key').some((message) => message.includes('ssl_session_ticket_key')));
  });

  it('refuses a file of another size, and a missing file, as nginx does', () => {
    assert.equal(errorOf(conf(join(dir, '47.key'))), `"${join(dir, '47.key')}" must be 48 or 80 bytes`);
    assert.equal(errorOf(conf(join(dir, 'none.key'))), `open() "${join(dir, 'none.key')}" failed (2: No such file or directory)`);
  });
});

const name = (file: string): string => readTicketKeyFile({ written: file, path: join(dir, file) }).name.toString('hex');

describe('ticket keys shared by separately built contexts', () => {
  const served: Served[] = [];

  // Each runtime has a state of its own, as each worker has; the master sends every one its keys.
  const states: ServingState[] = [];
  const masterSends = (...keys: Buffer[]): void => {
    for (const state of states) state.tls.ticketKeys.useMaster(keys.map((key) => key.toString('base64')));
  };

  before(async () => {
    // Configurations loaded apart, as two workers (or two hosts) build theirs.
    const texts = [conf(join(dir, '80.key')), conf(join(dir, '80.key')), conf(), conf(), conf(join(dir, 'y.key')), conf(join(dir, 'x.key'), join(dir, 'y.key'))];
    for (const text of texts) {
      const state = localServingState();
      states.push(state);
      served.push(await serve(text, dir, undefined, state));
    }
  });
  after(async () => {
    for (const one of served) await one.stop();
  });

  it('resumes on the other context with the same ssl_session_ticket_key', async () => {
    const [a, b] = served;
    const first = await getWithSession(a?.port ?? 0);
    assert.ok(first.session !== undefined);
    assert.equal((await getWithSession(b?.port ?? 0, first.session)).reused, true);
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: follows the master's keys; a ticket under the replaced key resumes and is renewed, until the next rotation`, async () => {
      const [, , c, d] = served;
      const keyA = createTicketKey();
      const keyB = createTicketKey();
      masterSends(keyA);
      const first = await getWithSession(c?.port ?? 0, undefined, version);
      assert.ok(first.session !== undefined);
      assert.equal(first.ticketKey, keyA.subarray(0, 16).toString('hex'));
      assert.equal((await getWithSession(d?.port ?? 0, first.session, version)).reused, true);
      masterSends(keyB, keyA);
      const renewed = await getWithSession(d?.port ?? 0, first.session, version);
      assert.equal(renewed.reused, true);
      assert.equal(renewed.ticketKey, keyB.subarray(0, 16).toString('hex'));
      masterSends(createTicketKey(), keyB);
      const afterNext = await getWithSession(c?.port ?? 0, first.session, version);
      assert.equal(afterNext.reused, false);
    });
  }

  it('keeps an ssl_session_ticket_key through a rotation of the master\'s keys', async () => {
    const [a, b] = served;
    const first = await getWithSession(a?.port ?? 0);
    masterSends(createTicketKey());
    assert.equal((await getWithSession(b?.port ?? 0, first.session)).reused, true);
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: with several files, the first encrypts and a ticket under another resumes and is renewed under the first`, async () => {
      const [, , , , yOnly, xThenY] = served;
      const first = await getWithSession(yOnly?.port ?? 0, undefined, version);
      assert.equal(first.ticketKey, name('y.key'));
      const resumed = await getWithSession(xThenY?.port ?? 0, first.session, version);
      assert.equal(resumed.reused, true);
      assert.equal(resumed.ticketKey, name('x.key'));
      const fresh = await getWithSession(xThenY?.port ?? 0, undefined, version);
      assert.equal(fresh.ticketKey, name('x.key'));
      // y.key alone knows no ticket under x.key.
      assert.equal((await getWithSession(yOnly?.port ?? 0, fresh.session, version)).reused, false);
    });
  }
});
