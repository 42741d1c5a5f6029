/**
 * gunzip side by side with Debian's nginx (built with ngx_http_gunzip_module): one configuration,
 * a Node upstream that sends gzip-encoded bodies (one member, two members, empty, corrupt, cut
 * short), and .gz files that gzip_static always sends. A client that does not take gzip (no
 * Accept-Encoding, HTTP/1.0 under gzip_http_version 1.1, a Via under gzip_proxied off, a
 * gzip_disable User-Agent) gets the inflated body without Content-Encoding and Content-Length;
 * one that takes gzip gets the gzip bytes as they came. A broken stream closes the connection
 * before the last chunk, with nginx's [error], in both.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { freePort } from '../deploy/helpers/nginx.js';
import { fetchRaw, fieldsOf, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

const TEXT = Array.from({ length: 2000 }, (_, i) => `line ${i}: gunzip me\n`).join('');
const GZ = gzipSync(TEXT);
/** A deflate block with its bytes flipped in the middle: inflate() refuses it (Z_DATA_ERROR). */
const CORRUPT = Buffer.from(GZ);
for (let i = 40; i < 80; i++) CORRUPT[i] = 0xff;

/** What the upstream sends for a path: a gzip-encoded body with its length. */
const UPSTREAM: Readonly<Record<string, Buffer>> = {
  '/one': GZ,
  '/two': Buffer.concat([GZ, gzipSync('second member\n')]),
  '/empty': gzipSync(''),
  '/corrupt': CORRUPT,
  '/short': GZ.subarray(0, GZ.length - 100),
};

/** One request on a raw connection, read until the server closes it. */
function rawExchange(port: number, text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('no close within 10 s')));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.write(text);
  });
}

/** The fields gunzip decides, and the body (inflated when it still says gzip). */
function summary(answer: RawAnswer): Record<string, unknown> {
  const encoding = fieldsOf(answer, 'content-encoding').join(', ');
  const body = Buffer.from(answer.body, 'latin1');
  return {
    status: answer.status,
    encoding,
    length: fieldsOf(answer, 'content-length').join(', '),
    vary: fieldsOf(answer, 'vary').join(', '),
    etag: fieldsOf(answer, 'etag').join(', '),
    // Debian's nginx 1.22 sends no Accept-Ranges with a gzip_static file (later nginx sets allow_ranges there, as hitless does): compared only once inflated.
    ranges: encoding === 'gzip' ? 'not compared' : fieldsOf(answer, 'accept-ranges').join(', '),
    body: encoding === 'gzip' && body.length > 0 ? `gzip:${gunzipSync(body).toString('latin1')}` : answer.body,
  };
}

describe('gunzip: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: Server;

  before(async () => {
    upstream = createServer((req, res) => {
      const body = UPSTREAM[req.url ?? ''];
      if (body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Encoding': 'gzip', 'Content-Length': body.length, ETag: '"up"' });
      res.end(body);
    });
    const upstreamPort = await freePort();
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
    pair = await startPair(
      (port, dir) => `events {}
http {
    access_log off;
    default_type text/plain;
    server {
        listen 127.0.0.1:${port};
        gunzip on;
        gunzip_buffers 4 8k;
        gzip_vary on;
        gzip_disable "^gzipless/";
        location /up/ { proxy_pass http://127.0.0.1:${upstreamPort}/; }
        location /http10/ { gzip_http_version 1.0; proxy_pass http://127.0.0.1:${upstreamPort}/; }
        location /proxied/ { gzip_proxied any; proxy_pass http://127.0.0.1:${upstreamPort}/; }
        location /off/ { gunzip off; proxy_pass http://127.0.0.1:${upstreamPort}/; }
        location /static/ { alias ${dir}/www/; gzip_static always; }
        location /novary/ { alias ${dir}/www/; gzip_static always; gzip_vary off; }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'www'));
        writeFileSync(join(dir, 'www/page.txt.gz'), GZ);
        writeFileSync(join(dir, 'www/plain.txt'), 'not compressed\n');
      },
    );
  });

  after(async () => {
    await pair?.stop();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  const gz = { 'accept-encoding': 'gzip' };
  const cases: [string, string, Record<string, string>][] = [
    ['GET', '/up/one', {}],
    ['GET', '/up/one', gz],
    ['GET', '/up/one', { 'accept-encoding': 'gzip;q=0' }],
    ['GET', '/up/one', { 'accept-encoding': 'deflate, br' }],
    ['HEAD', '/up/one', {}],
    ['GET', '/up/two', {}],
    ['GET', '/up/empty', {}],
    ['GET', '/up/one', { ...gz, via: '1.1 cache' }],
    ['GET', '/proxied/one', { ...gz, via: '1.1 cache' }],
    ['GET', '/up/one', { ...gz, 'user-agent': 'gzipless/1.0' }],
    ['GET', '/off/one', {}],
    ['GET', '/static/page.txt', {}],
    ['GET', '/static/page.txt', gz],
    ['GET', '/static/page.txt', { range: 'bytes=0-9' }],
    ['HEAD', '/static/page.txt', {}],
    ['GET', '/static/plain.txt', {}],
    ['GET', '/novary/page.txt', {}],
  ];

  for (const [method, path, headers] of cases) {
    it(`${method} ${path} ${JSON.stringify(headers)}`, async () => {
      const [ours, theirs] = await Promise.all([fetchRaw(pair.ports.hitless, path, headers, method), fetchRaw(pair.ports.nginx, path, headers, method)]);
      assert.deepEqual(summary(ours), summary(theirs));
    });
  }

  it('inflates for an HTTP/1.0 client under gzip_http_version 1.1, not under 1.0', async () => {
    for (const path of ['/up/one', '/http10/one']) {
      const request = `GET ${path} HTTP/1.0\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n`;
      const [ours, theirs] = await Promise.all([rawExchange(pair.ports.hitless, request), rawExchange(pair.ports.nginx, request)]);
      const split = (raw: Buffer): { encoded: boolean; body: Buffer } => {
        const at = raw.indexOf('\r\n\r\n');
        return { encoded: /\r\ncontent-encoding: gzip\r\n/i.test(raw.subarray(0, at).toString('latin1')), body: raw.subarray(at + 4) };
      };
      assert.deepEqual(split(ours), split(theirs));
      assert.equal(split(ours).encoded, path === '/http10/one');
      if (path === '/up/one') assert.equal(split(ours).body.toString('latin1'), TEXT);
    }
  });

  for (const [path, message] of [
    ['/up/corrupt', /inflate\(\) failed: \d, -3/],
    ['/up/short', /inflate\(\) returned -5 on response end/],
  ] as const) {
    it(`a broken gzip stream (${path}) ends the connection without the last chunk, with nginx's [error]`, async () => {
      const request = `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
      const answers = await Promise.all([rawExchange(pair.ports.hitless, request), rawExchange(pair.ports.nginx, request)]);
      for (const raw of answers) {
        const text = raw.toString('latin1');
        // nginx holds a small head until postpone_output and closes without sending it; a head that went out is the inflated one's.
        if (text !== '') {
          assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
          assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/i);
          assert.doesNotMatch(text, /\r\ncontent-(encoding|length):/i);
        }
        assert.ok(!text.endsWith('\r\n0\r\n\r\n'), 'the response must not be complete');
      }
      for (const name of ['hitless', 'nginx']) {
        const log = join(pair.dir, name, 'logs/error.log');
        // The [error] is written before the connection closes; allow a bounded number of reads for the write to land.
        let text = '';
        for (let i = 0; i < 50 && !message.test(text); i++) {
          text = existsSync(log) ? readFileSync(log, 'latin1') : '';
          if (!message.test(text)) await new Promise((resolve) => setImmediate(resolve));
        }
        assert.match(text, new RegExp(`\\[error\\].*${message.source}.*request: "GET ${path} HTTP/1\\.1"`), `${name}'s error log`);
      }
    });
  }
});
