/**
 * A request whose head cannot be parsed, side by side with Debian's nginx: nginx answers its 400
 * through ngx_http_finalize_request() with the default server's configuration, so that server's
 * `add_header ... always` fields are in the answer (variables read the connection), the others are not.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

/** Sends `bytes` and reads the answer until the server closes (bounded by 5 s). */
function rawExchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no close within 5 s'));
    }, 5000);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/** The status and the X- fields of a raw answer, lower-cased names. */
function summary(answer: string): { status: string; fields: string[] } {
  const head = answer.split('\r\n\r\n')[0] ?? '';
  const [statusLine, ...lines] = head.split('\r\n');
  return { status: (statusLine ?? '').split(' ')[1] ?? '', fields: lines.filter((line) => /^x-/i.test(line)).map((line) => line.toLowerCase()).sort() };
}

describe('a head nginx cannot parse: the default server add_header always, as nginx', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair(
      (port) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        server_name first;
        add_header X-Always "always $server_name" always;
        add_header X-Addr $remote_addr always;
        add_header X-Plain plain;
        location / { return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:${port};
        server_name second;
        add_header X-Second second always;
    }
}
`,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  for (const [name, bytes] of [
    ['a request line starting with byte 0', Buffer.from('\x00\x01GET / HTTP/1.1\r\nHost: first\r\n\r\n', 'latin1')],
    ['a header line with no colon', Buffer.from('GET / HTTP/1.1\r\nHost: first\r\nbroken header\r\n\r\n', 'latin1')],
  ] as const) {
    it(name, async () => {
      const hitless = summary(await rawExchange(pair.ports.hitless, bytes));
      const nginx = summary(await rawExchange(pair.ports.nginx, bytes));
      assert.equal(nginx.status, '400');
      assert.ok(nginx.fields.some((line) => line.startsWith('x-always:')), `nginx sent ${JSON.stringify(nginx.fields)}`);
      assert.deepEqual(hitless, nginx);
    });
  }
});
