import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { load, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

/** The keys the configurations below touch, decrypted and encrypted. */
const KEYS = ['a-rsa.key', 'a-rsa-2.key', 'b-ec.key', 'mismatched.key', 'broken.key', 'a-rsa.encrypted.key', 'a-rsa.encrypted-traditional.key'];

/** Every base64 body line of those keys: none may appear in a message or a log. */
const SECRET_LINES = KEYS.flatMap((name) =>
  pem(name)
    .split('\n')
    .filter((line) => line.length >= 16 && !line.startsWith('-----') && !line.includes(':')),
);

/** Every text an error carries: message, stack, and the same of its causes. */
function textsOf(err: unknown): string[] {
  const texts: string[] = [];
  for (let current: unknown = err, depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    if (current instanceof Error) {
      texts.push(current.message, current.stack ?? '', String(current), JSON.stringify(current));
      current = current.cause;
    } else {
      texts.push(String(current));
      current = undefined;
    }
  }
  return texts;
}

function assertNoKey(text: string, what: string): void {
  for (const line of SECRET_LINES) assert.ok(!text.includes(line), `${what} holds a line of a private key`);
}

describe('private keys never reach a message or the error log', () => {
  it('has key lines to look for (the check itself can fail)', () => {
    assert.ok(SECRET_LINES.length > 40);
    assert.throws(() => assertNoKey(`x ${SECRET_LINES[3] ?? ''} y`, 'a planted line'));
  });

  it('configuration errors: a key of another certificate, a wrong or missing passphrase, a broken or missing key', () => {
    const cases = [
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}mismatched.key;`,
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}a-rsa-2.key;`,
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}a-rsa.encrypted.key; ssl_password_file ${FIXTURES}wrong.passwords;`,
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}a-rsa.encrypted-traditional.key;`,
      `ssl_certificate ${FIXTURES}a-ec.crt; ssl_certificate_key ${FIXTURES}broken.key;`,
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}nonexistent.key;`,
      // A key where the certificate should be.
      `ssl_certificate ${FIXTURES}a-rsa.key; ssl_certificate_key ${FIXTURES}a-rsa.key;`,
      // A key file given as the passphrase file.
      `ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}a-rsa.encrypted.key; ssl_password_file ${FIXTURES}b-ec.key;`,
    ];
    for (const directives of cases) {
      let thrown: unknown;
      try {
        load(`http { server { listen 127.0.0.1:8443 ssl; ${directives} } }`);
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown !== undefined, `refused: ${directives}`);
      for (const text of textsOf(thrown)) assertNoKey(text, directives);
    }
  });

  describe('handshake errors of certificates named with variables', () => {
    let dir: TempDir;
    let served: Served;
    const logFile = (): string => join(dir.path, 'error.log');

    before(async () => {
      dir = tempDir({
        'mismatch.test.crt': pem('a-rsa.fullchain.crt'),
        'mismatch.test.key': pem('mismatched.key'),
        'wrongpass.test.crt': pem('a-rsa.fullchain.crt'),
        'wrongpass.test.key': pem('a-rsa.encrypted.key'),
        'broken.test.crt': pem('a-ec.fullchain.crt'),
        'broken.test.key': pem('broken.key'),
        'nokey.test.crt': pem('a-rsa.fullchain.crt'),
        'keyascert.test.crt': pem('a-rsa.key'),
        'keyascert.test.key': pem('a-rsa.key'),
        'rotated.test.crt': pem('a-rsa.fullchain.crt'),
        'rotated.test.key': pem('a-rsa.key'),
      });
      served = await serve(
        `http {
          access_log off;
          ssl_password_file ${FIXTURES}wrong.passwords;
          server {
            listen 127.0.0.1:1443 ssl;
            ssl_certificate ${dir.path}/$ssl_server_name.crt;
            ssl_certificate_key ${dir.path}/$ssl_server_name.key;
            return 200;
          }
        }`,
        dir.path,
        new ErrorLog([{ file: logFile(), level: 'debug' }]),
      );
    });

    after(async () => {
      await served.stop();
      dir.remove();
    });

    /** A handshake's error as the client sees it; undefined when it succeeded. */
    const attempt = (servername: string): Promise<string | undefined> =>
      new Promise((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: served.port, servername, rejectUnauthorized: false }, () => {
          socket.destroy();
          resolve(undefined);
        });
        socket.once('error', (err) => resolve(textsOf(err).join('\n')));
      });

    it('logs why each handshake failed, with paths and OpenSSL reasons only', async () => {
      for (const name of ['mismatch.test', 'wrongpass.test', 'broken.test', 'nokey.test', 'keyascert.test']) {
        const error = await attempt(name);
        assert.ok(error !== undefined, `${name} fails`);
        assertNoKey(error, `the client's error for ${name}`);
      }
      // A pair that served, then a key of another certificate in its place: the previous one goes on.
      assert.equal(await attempt('rotated.test'), undefined);
      writeFileSync(join(dir.path, 'rotated.test.key'), pem('a-rsa-2.key'));
      assert.equal(await attempt('rotated.test'), undefined);
      const log = readFileSync(logFile(), 'latin1');
      for (const expected of ['mismatch.test.key', 'wrongpass.test.key', 'broken.test.key', 'nokey.test.key', 'keyascert.test.crt', 'rotated.test.key']) {
        assert.ok(log.includes(expected), `the log names ${expected}`);
      }
      assertNoKey(log, 'the error log');
    });
  });
});
