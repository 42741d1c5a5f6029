/**
 * Session ticket keys: nginx's key files in Node's layout, keys shared by separately built contexts
 * (as two workers build theirs), and a rotation of the master's key, after which a ticket under the
 * old key gets a full handshake because Node keeps one key per context.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localServingState, type ServingState } from '../../src/http/serving-state.js';
import { createTicketKey, readTicketKeyFile } from '../../src/tls/ticket-keys.js';
import { errorOf, serve, type Served } from '../http/helpers.js';
import { fixture, getWithSession } from './session-client.js';

const dir = mkdtempSync(join(tmpdir(), 'hitless-tickets-'));
const bytes = (length: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => i));
writeFileSync(join(dir, '48.key'), bytes(48));
writeFileSync(join(dir, '80.key'), bytes(80));
writeFileSync(join(dir, '47.key'), bytes(47));

const conf = (ticketKey?: string): string => `http {
  access_log off;
  server {
    listen 127.0.0.1:1443 ssl;
    server_name a.test;
    ssl_certificate ${fixture('a-rsa.fullchain.crt')};
    ssl_certificate_key ${fixture('a-rsa.key')};
    ${ticketKey === undefined ? '' : `ssl_session_ticket_key ${ticketKey};`}
    return 200 "ok";
  }
}`;

after(() => rmSync(dir, { recursive: true, force: true }));

describe('ssl_session_ticket_key files', () => {
  it('reorders a 48-byte file (name, AES, HMAC) into Node\'s name, HMAC, AES', () => {
    const key = readTicketKeyFile({ written: '48.key', path: join(dir, '48.key') });
    assert.deepEqual(key, Buffer.concat([bytes(48).subarray(0, 16), bytes(48).subarray(32, 48), bytes(48).subarray(16, 32)]));
  });

  it('takes the first 16 bytes of the HMAC and AES keys of an 80-byte file', () => {
    const key = readTicketKeyFile({ written: '80.key', path: join(dir, '80.key') });
    assert.deepEqual(key, Buffer.concat([bytes(80).subarray(0, 16), bytes(80).subarray(16, 32), bytes(80).subarray(48, 64)]));
  });

  it('refuses a file of another size, and a missing file, as nginx does', () => {
    assert.equal(errorOf(conf(join(dir, '47.key'))), `"${join(dir, '47.key')}" must be 80 or 48 bytes`);
    assert.equal(errorOf(conf(join(dir, 'none.key'))), `open() "${join(dir, 'none.key')}" failed (2: No such file or directory)`);
  });
});

describe('ticket keys shared by separately built contexts', () => {
  const served: Served[] = [];

  // Each runtime has a state of its own, as each worker has; the master sends every one its key.
  const states: ServingState[] = [];
  const masterSends = (key: Buffer): void => {
    for (const state of states) state.tls.ticketKeys.use(key);
  };

  before(async () => {
    // Two configurations loaded apart, as two workers (or two hosts) build theirs.
    for (const text of [conf(join(dir, '80.key')), conf(join(dir, '80.key')), conf(), conf()]) {
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

  it('follows the master\'s key, and a rotation sends older tickets to a full handshake', async () => {
    const [, , c, d] = served;
    masterSends(createTicketKey());
    const first = await getWithSession(c?.port ?? 0);
    assert.ok(first.session !== undefined);
    assert.equal((await getWithSession(d?.port ?? 0, first.session)).reused, true);
    masterSends(createTicketKey());
    const afterRotation = await getWithSession(d?.port ?? 0, first.session);
    assert.equal(afterRotation.reused, false);
    assert.ok(afterRotation.session !== undefined);
    assert.equal((await getWithSession(c?.port ?? 0, afterRotation.session)).reused, true);
  });

  it('keeps an ssl_session_ticket_key through a rotation of the master\'s key', async () => {
    const [a, b] = served;
    const first = await getWithSession(a?.port ?? 0);
    masterSends(createTicketKey());
    assert.equal((await getWithSession(b?.port ?? 0, first.session)).reused, true);
  });
});
