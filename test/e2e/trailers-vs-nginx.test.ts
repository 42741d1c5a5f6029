/**
 * `add_trailer` side by side with Debian's nginx: an HTTP/1.1 response that will carry trailers
 * is chunked (its length dropped) and ends with them; HTTP/1.0, HEAD, empty values and statuses
 * without `always` carry none; HTTP/2 (h2c) ends the stream with them in a HEADERS frame.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

/** The response as sent, but for what two servers differ in: Server, Date, header order, a built-in page. */
function exchangeRaw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.write(request);
  });
}

function normalize(response: string): { head: string[]; body: string } {
  const split = response.indexOf('\r\n\r\n');
  const [status, ...fields] = response.slice(0, split).split('\r\n');
  const page = response.includes('<html>');
  // The built-in pages differ by the signature: their length, chunk size and text go.
  const head = [status as string, ...fields.filter((line) => !/^(server|date):/i.test(line) && !(page && /^content-length:/i.test(line))).sort()];
  const body = response.slice(split + 4).replace(/^[0-9a-f]+\r\n<html>[\s\S]*?<\/html>\r\n\r\n/, 'PAGE\r\n').replace(/<center>(hitless|nginx)[^<]*<\/center>/, '<center>SIGNATURE</center>');
  return { head, body };
}

function h2Get(port: number, path: string): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', reject);
    const stream = client.request({ ':path': path });
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    let body = '';
    stream.on('response', (h) => (headers = { ...h }));
    stream.on('trailers', (t) => (trailers = { ...t }));
    stream.setEncoding('latin1');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      client.close();
      resolve({ headers, trailers, body });
    });
    stream.on('error', reject);
  });
}

describe('add_trailer: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: http.Server;

  before(async () => {
    // A chunked upstream body (no length), which the proxy passes on chunked.
    upstream = http.createServer((_req, res) => {
      res.write('up');
      res.end('stream');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const up = (upstream.address() as AddressInfo).port;
    pair = await startPair(
      (port, dir, [h2]) => `events {}
http {
    access_log off;
    add_trailer X-Http http;
    server {
        listen 127.0.0.1:${port};
        listen 127.0.0.1:${h2 ?? 0} http2;
        root ${dir}/www;
        location / { add_trailer X-Uri "u-$uri"; add_trailer X-Empty ""; add_trailer X-Always a always; }
        location /inherit { alias ${dir}/www/; }
        location /return { add_trailer X-T t; return 200 "ok"; }
        location /missing { add_trailer X-T t; add_trailer X-Always a always; return 404; }
        location /safe-only { add_trailer X-T t; return 404; }
        location /proxy { add_trailer X-T t; add_trailer X-Length $upstream_response_length; proxy_pass http://127.0.0.1:${up}; }
        location /proxy-file { add_trailer X-Length $upstream_response_length; proxy_pass http://127.0.0.1:${port}/a.txt; }
        location /off { alias ${dir}/www/; chunked_transfer_encoding off; add_trailer X-T t; }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'www'));
        chmodSync(join(dir, 'www'), 0o755);
        writeFileSync(join(dir, 'www/a.txt'), 'hello');
      },
      1,
    );
  });

  after(async () => {
    await pair?.stop();
    upstream?.close();
  });

  const requests = [
    'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /a.txt HTTP/1.0\r\n\r\n',
    'HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /inherit/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /return HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /safe-only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /off/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    'GET /proxy HTTP/1.0\r\n\r\n',
    'GET /proxy-file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  ];
  for (const request of requests) {
    it(request.split('\r\n')[0] as string, async () => {
      const expected = normalize(await exchangeRaw(pair.ports.nginx, request));
      const actual = normalize(await exchangeRaw(pair.ports.hitless, request));
      assert.deepEqual(actual, expected);
    });
  }

  for (const path of ['/a.txt', '/return', '/missing', '/proxy']) {
    it(`HTTP/2 GET ${path}: the same trailers`, async () => {
      const expected = await h2Get(pair.extra.nginx[0] as number, path);
      const actual = await h2Get(pair.extra.hitless[0] as number, path);
      assert.equal(actual.headers[':status'], expected.headers[':status']);
      assert.deepEqual(actual.trailers, expected.trailers);
      if (path !== '/missing') assert.ok(Object.keys(expected.trailers).length > 0, 'nginx itself sends trailers');
    });
  }
});
