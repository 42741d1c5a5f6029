/**
 * `log_format ... escape=default|json|none` side by side with Debian's nginx: the same requests,
 * carrying quotes, backslashes, a tab and bytes from 0x80 in a header and in the query string, a
 * map value with raw control characters (0x01, 0x1f, 0x7f: hitless answers 400 to them in a header
 * value, where nginx takes them, a deliberate difference that docs/security.md gives), and a variable not found, give the same log lines byte for byte.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';
import { waitFor } from './helpers/masters.js';

const ESCAPES = ['default', 'json', 'none'] as const;

/** Sends `head` (bytes) and reads to the end of the connection. */
function send(port: number, head: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(head));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('log_format escape= side by side with nginx', () => {
  let pair: NginxPair;
  before(async () => {
    pair = await startPair((port, dir, _extra, name) => `worker_processes 1;
events {}
http {
    map $host $controls { default "a\x01b\x1fc\x7fd"; }
${ESCAPES.map((escape) => `    log_format ${escape} escape=${escape} '[$http_x_test] [$args] [$http_missing] [$controls] [$request]';`).join('\n')}
    server {
        listen 127.0.0.1:${port};
${ESCAPES.map((escape) => `        access_log ${join(dir, `${name}-${escape}.log`)} ${escape};`).join('\n')}
        location / { return 204; }
    }
}
`);
  });
  after(async () => {
    await pair?.stop();
  });

  it('writes the same lines as nginx for each escape', async (t) => {
    const requests = [
      Buffer.concat([Buffer.from('GET /q?a="b"\\c&d=%22&e='), Buffer.from([0x80, 0xc3, 0xa9, 0xff]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nX-Test: say "hi"\\ \t tab caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\nConnection: close\r\n\r\n')]),
      Buffer.from('GET /plain HTTP/1.1\r\nHost: x\r\nX-Test: plain text\r\nConnection: close\r\n\r\n'),
    ];
    for (const name of ['hitless', 'nginx'] as const) {
      for (const request of requests) assert.match(await send(pair.ports[name], request), /^HTTP\/1\.1 204 /);
    }
    for (const escape of ESCAPES) {
      const read = (name: string): string => {
        const path = join(pair.dir, `${name}-${escape}.log`);
        return existsSync(path) ? readFileSync(path, 'latin1') : '';
      };
      const nginx = await waitFor(`nginx's ${escape} log`, () => (read('nginx').split('\n').length > requests.length ? read('nginx') : undefined));
      t.diagnostic(`escape=${escape}: ${JSON.stringify(nginx.split('\n')[0])}`);
      const hitless = await waitFor(`hitless's ${escape} log`, () => (read('hitless').split('\n').length > requests.length ? read('hitless') : undefined));
      assert.equal(JSON.stringify(hitless), JSON.stringify(nginx), `escape=${escape}`);
      // The lines carry what each escape does to a control character, so the comparison is not of two unescaped lines.
      assert.ok(nginx.includes({ default: 'a\\x01b\\x1Fc\\x7Fd', json: 'a\\u0001b\\u001Fc\x7fd', none: 'a\x01b\x1fc\x7fd' }[escape]), `escape=${escape}: ${JSON.stringify(nginx)}`);
    }
  });
});
