/**
 * `early_hints` (nginx 1.29): an upstream's 103 Early Hints, from an HTTP/1.1 upstream (node:http's
 * writeEarlyHints) or an HTTP/2 one (proxy_http_version 2), reaches HTTP/1.1 and HTTP/2 clients
 * when a value is neither empty nor "0", minus the fields proxy_hide_header hides; never an
 * HTTP/1.0 client, never by default. Debian's nginx (1.22) has no early_hints: hitless alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorOf, RawClient, serve, type Served } from './helpers.js';

/** Everything the server sent on one raw connection until it closed. */
async function raw(port: number, request: string): Promise<string> {
  const client = await RawClient.connect(port);
  let text = '';
  client.socket.on('data', (chunk: string) => (text += chunk));
  client.send(request);
  await client.untilEnded();
  client.destroy();
  return text;
}

/** The interim and final heads an HTTP/2 client gets for `path`, and the body. */
function h2Heads(port: number, path: string): Promise<{ heads: IncomingHttpHeaders[]; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':path': path });
    const heads: IncomingHttpHeaders[] = [];
    let body = '';
    stream.on('headers', (headers) => heads.push(headers));
    stream.on('response', (headers) => heads.push(headers));
    stream.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    stream.on('end', () => {
      session.close();
      resolve({ heads, body });
    });
    stream.on('error', reject);
    stream.setTimeout(10_000, () => stream.close());
    stream.end();
  });
}

describe('early_hints', () => {
  let dir = '';
  let served: Served;
  let h1: Server;
  let h2: http2.Http2Server;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-early-hints-'));
    h1 = createServer((_req, res) => {
      res.writeEarlyHints({ link: '</a.css>; rel=preload', 'x-accel-expires': '10' });
      res.end('SEE-THIS');
    });
    h2 = http2.createServer();
    h2.on('stream', (stream) => {
      stream.additionalHeaders({ ':status': 103, link: '</b.css>; rel=preload', 'x-secret': 'no' });
      stream.respond({ ':status': 200 });
      stream.end('SEE-THIS');
    });
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const h1Port = (h1.address() as AddressInfo).port;
    const h2Port = (h2.address() as AddressInfo).port;
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:8080;
          http2 on;
          early_hints $arg_hints;
          proxy_hide_header X-Secret;
          location /h1/ { proxy_pass http://127.0.0.1:${h1Port}; proxy_http_version 1.1; }
          location /h2/ { proxy_pass http://127.0.0.1:${h2Port}; proxy_http_version 2; }
          location /grpc/ { grpc_pass 127.0.0.1:${h2Port}; grpc_hide_header X-Secret; }
        }
        server {
          listen 127.0.0.1:8081;
          location / { proxy_pass http://127.0.0.1:${h1Port}; }
        }
      }`,
      dir,
    );
  });

  after(async () => {
    await served?.stop();
    h1?.closeAllConnections();
    h1?.close();
    h2?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const port = (): number => served.ports.get('127.0.0.1:8080') ?? 0;

  it('passes an HTTP/1.1 upstream\'s 103 to an HTTP/1.1 client, without the hidden fields', async () => {
    const reply = await raw(port(), 'GET /h1/?hints=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 103 Early Hints\r\nlink: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/i);
    assert.doesNotMatch(reply, /x-accel-expires/i);
    assert.match(reply, /SEE-THIS/);
  });

  it('passes an HTTP/2 upstream\'s 103 to HTTP/1.1 and HTTP/2 clients', async () => {
    const reply = await raw(port(), 'GET /h2/?hints=yes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 103 Early Hints\r\nlink: <\/b\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/i);
    assert.doesNotMatch(reply, /x-secret/i);
    const { heads, body } = await h2Heads(port(), '/h2/?hints=1');
    assert.deepEqual(heads.map((head) => head[':status']), [103, 200]);
    assert.equal(heads[0]?.link, '</b.css>; rel=preload');
    assert.equal(body, 'SEE-THIS');
    const fromH1 = await h2Heads(port(), '/h1/?hints=1');
    assert.deepEqual(fromH1.heads.map((head) => head[':status']), [103, 200]);
  });

  it('passes a gRPC server\'s 103 from grpc_pass too', async () => {
    const reply = await raw(port(), 'GET /grpc/?hints=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 103 Early Hints\r\nlink: <\/b\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/i);
    assert.match(await raw(port(), 'GET /grpc/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  it('sends no 103 for "0", an empty value, an HTTP/1.0 client, or without the directive', async () => {
    for (const query of ['?hints=0', '', '?hints=']) {
      const reply = await raw(port(), `GET /h2/${query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/, query);
    }
    assert.match(await raw(port(), 'GET /h1/?hints=1 HTTP/1.0\r\nHost: localhost\r\n\r\n'), /^HTTP\/1\.1 200 OK\r\n/);
    const other = served.ports.get('127.0.0.1:8081') ?? 0;
    assert.match(await raw(other, 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  it('refuses an unknown variable in its values, as nginx -t does', () => {
    assert.match(errorOf('http { server { early_hints $nosuch; location / { proxy_pass http://127.0.0.1:1; } } }'), /^unknown "nosuch" variable/);
  });
});
