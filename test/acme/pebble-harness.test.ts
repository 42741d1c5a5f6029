/** The pebble harness itself: it starts, serves a directory and its root, and stops both processes. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { test } from 'node:test';
import { startPebble } from '../helpers/pebble.js';

function getJson(url: string, ca: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('pebble starts on loopback, serves its directory over a TLS certificate the test trusts, and stops', { timeout: 30_000 }, async () => {
  const pebble = await startPebble({ httpPort: 1, tlsPort: 2 });
  try {
    const directory = await getJson(pebble.directoryUrl, pebble.caPem);
    assert.equal(typeof directory.newOrder, 'string');
    // Pebble 2.4 predates its ARI support: no renewalInfo in the directory.
    assert.equal(directory.renewalInfo, undefined);
    const root = new X509Certificate(await pebble.rootPem());
    assert.match(root.subject, /Pebble Root CA/);
    assert.equal(pebble.orders(), 0);
  } finally {
    await pebble.stop();
  }
});
