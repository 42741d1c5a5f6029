import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

/** The two certificates for a.test the rotation goes back and forth between. */
const GENERATIONS = [
  { crt: pem('a-rsa.fullchain.crt'), key: pem('a-rsa.key'), fingerprint: new X509Certificate(pem('a-rsa.crt')).fingerprint256 },
  { crt: pem('a-rsa-2.fullchain.crt'), key: pem('a-rsa-2.key'), fingerprint: new X509Certificate(pem('a-rsa-2.crt')).fingerprint256 },
] as const;

/** A full handshake (no session offered) with SNI a.test: the leaf's fingerprint, or the error. */
function handshake(port: number): Promise<{ fingerprint: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'a.test', ca: CA }, () => {
      const leaf = socket.getPeerX509Certificate();
      socket.destroy();
      resolve({ fingerprint: leaf?.fingerprint256 ?? '' });
    });
    socket.once('error', (err) => resolve({ error: err.message }));
  });
}

/** Replaces a file as deploy tools do: written beside it, renamed over it. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('ssl_certificate with variables: files rotated under a stream of handshakes', () => {
  let dir: TempDir;
  let served: Served;

  before(async () => {
    dir = tempDir({ 'certs/a.test.crt': GENERATIONS[0].crt, 'certs/a.test.key': GENERATIONS[0].key });
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name a.test;
          ssl_certificate certs/$ssl_server_name.crt;
          ssl_certificate_key certs/$ssl_server_name.key;
          return 200;
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

  it('fails no handshake while key and certificate are renamed in, either first, and serves the new pair once both are', async () => {
    const crt = join(dir.path, 'certs/a.test.crt');
    const key = join(dir.path, 'certs/a.test.key');
    const seen = new Set<string>();
    const failures: string[] = [];
    let completed = 0;
    let rotating = true;
    const MAX_HANDSHAKES = 3000;

    /** Resolves once `count` more handshakes have completed (the stream sees the state in between). */
    const afterHandshakes = async (count: number): Promise<void> => {
      const target = completed + count;
      while (completed < target && completed < MAX_HANDSHAKES) await new Promise((resolve) => setImmediate(resolve));
    };

    const client = async (): Promise<void> => {
      // Until the rotation is over and at least 300 handshakes were made; never more than MAX_HANDSHAKES.
      while ((rotating || completed < 300) && completed < MAX_HANDSHAKES) {
        const reply = await handshake(served.port);
        completed += 1;
        if ('error' in reply) failures.push(reply.error);
        else seen.add(reply.fingerprint);
      }
    };

    const rotate = async (): Promise<void> => {
      try {
        await afterHandshakes(20);
        for (let swap = 1; swap <= 6; swap++) {
          const next = GENERATIONS[swap % 2] as (typeof GENERATIONS)[number];
          // Odd swaps write the key first, even ones the certificate: both halfway states are served.
          const [first, second] = swap % 2 === 1 ? [[key, next.key], [crt, next.crt]] : [[crt, next.crt], [key, next.key]];
          replace(...(first as [string, string]));
          await afterHandshakes(10);
          replace(...(second as [string, string]));
          // The next full handshake after the swap serves the new certificate.
          assert.deepEqual(await handshake(served.port), { fingerprint: next.fingerprint }, `swap ${swap}`);
          await afterHandshakes(20);
        }
      } finally {
        rotating = false;
      }
    };

    await Promise.all([rotate(), client(), client(), client(), client()]);
    assert.deepEqual(failures, [], `${failures.length} of ${completed} handshakes failed`);
    assert.ok(completed >= 300, `${completed} handshakes`);
    assert.deepEqual([...seen].sort(), GENERATIONS.map((generation) => generation.fingerprint).sort());
    // What was logged is the halfway pairs, each once, never a failure of a handshake.
    const lines = readFileSync(join(dir.path, 'error.log'), 'latin1').trim().split('\n').filter((line) => line !== '');
    for (const line of lines) assert.match(line, /\[error\] .*key values mismatch\).* the previously loaded certificate is still used$/);
    assert.ok(lines.length >= 1 && lines.length <= 12, `${lines.length} lines logged`);
  });
});
