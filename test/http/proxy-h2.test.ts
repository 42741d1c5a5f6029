/**
 * `proxy_http_version 2` (nginx 1.29's ngx_http_proxy_v2_module) against node:http2 upstreams:
 * the pseudo-headers and fields nginx sends, the body (buffered, streamed, chunked), a session per
 * request without `keepalive` and kept ones with it, TLS with ALPN h2, trailers with
 * proxy_pass_trailers, proxy_next_upstream on an h2 status, and a reset before the response.
 * Debian's nginx (1.22) has no proxy h2, so this runs hitless alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2, { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, get, load, RawClient, serve, type Served } from './helpers.js';
import { closedPort, rawUpstream, type Upstream } from './proxy-upstreams.js';

const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));

/** What an h2 upstream saw of one stream. */
interface Seen {
  readonly headers: IncomingHttpHeaders;
  readonly raw: readonly string[];
  readonly body: string;
  /** The DATA frames' sizes, as node:http2 delivered them. */
  readonly chunks: readonly number[];
}

/** An HTTP/2 upstream (h2c, or TLS with ALPN h2) that records streams and sessions and answers through `reply`. */
interface H2Upstream {
  readonly port: number;
  readonly seen: Seen[];
  /** Sessions opened so far. */
  sessions: number;
  /** ALPN protocols the TLS sessions negotiated. */
  readonly alpn: (string | false | undefined)[];
  stop(): Promise<void>;
}

async function h2Upstream(reply: (stream: ServerHttp2Stream, seen: Seen) => void, tls?: string): Promise<H2Upstream> {
  const server = tls === undefined
    ? http2.createServer()
    : http2.createSecureServer({ key: readFileSync(join(TLS, `${tls}.key`)), cert: readFileSync(join(TLS, `${tls}.fullchain.crt`)) });
  const upstream: H2Upstream = {
    port: 0,
    seen: [],
    sessions: 0,
    alpn: [],
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    upstream.sessions++;
    upstream.alpn.push(session.alpnProtocol);
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  upstream.stop = () => new Promise<void>((resolve) => {
    for (const session of sessions) session.destroy();
    server.close(() => resolve());
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
    const chunks: number[] = [];
    let body = '';
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk.length);
      body += chunk.toString('latin1');
    });
    stream.on('end', () => {
      const seen = { headers, raw, body, chunks };
      upstream.seen.push(seen);
      reply(stream, seen);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(upstream, { port: (server.address() as AddressInfo).port });
  return upstream;
}

/** Sends one raw HTTP/1.1 request (Connection: close) and returns everything the server sent back. */
async function raw(port: number, request: string): Promise<string> {
  const client = await RawClient.connect(port);
  let text = '';
  client.socket.on('data', (chunk: string) => (text += chunk));
  client.send(request);
  await client.untilEnded();
  client.destroy();
  return text;
}

/** The body of a raw HTTP/1.1 response, unchunked when it is chunked. */
function bodyOf(reply: string): string {
  const end = reply.indexOf('\r\n\r\n');
  let rest = reply.slice(end + 4);
  if (!/^transfer-encoding: chunked/im.test(reply.slice(0, end))) return rest;
  let body = '';
  for (let size = parseInt(rest, 16); size > 0; size = parseInt(rest, 16)) {
    const start = rest.indexOf('\r\n') + 2;
    body += rest.slice(start, start + size);
    rest = rest.slice(start + size + 2);
  }
  return body;
}

/** One request over HTTP/2 to hitless: status, headers, body and trailers. */
function h2Get(port: number, path: string): Promise<{ status: number; body: string; trailers: IncomingHttpHeaders | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':path': path, te: 'trailers' });
    let status = 0;
    let body = '';
    let trailers: IncomingHttpHeaders | undefined;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('trailers', (headers) => (trailers = headers));
    stream.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    stream.on('end', () => {
      session.close();
      resolve({ status, body, trailers });
    });
    stream.on('error', reject);
    stream.setTimeout(10_000, () => stream.close());
    stream.end();
  });
}

describe('proxy_http_version 2: directives', () => {
  it('takes 2 and refuses other values in nginx 1.29\'s words', () => {
    const location = load('http { server { location / { proxy_pass http://127.0.0.1:1; proxy_http_version 2; } } }').main.child('http')?.blocks[0]?.blocks[0];
    assert.equal(location?.get('proxy_http_version'), '2');
    assert.equal(errorOf('http { proxy_http_version 3; }'), 'invalid value "3" in /x.conf:1');
  });

  it('warns that proxy_pass_trailers passes nothing from an HTTP/1.x upstream', () => {
    const warnings = load('http { server { location / { proxy_pass http://127.0.0.1:1; proxy_pass_trailers on; } } }').warnings.map((warning) => warning.message);
    assert.ok(warnings.some((warning) => warning.includes('"proxy_pass_trailers" passes trailers only with "proxy_http_version 2"')), warnings.join('\n'));
    const quiet = load('http { server { location / { proxy_pass http://127.0.0.1:1; proxy_http_version 2; proxy_pass_trailers on; } } }').warnings;
    assert.equal(quiet.filter((warning) => warning.message.includes('proxy_pass_trailers')).length, 0);
  });
});

describe('proxy_http_version 2: requests to node:http2 upstreams', () => {
  let dir = '';
  let served: Served;
  let echo: H2Upstream;
  let kept: H2Upstream;
  let limited: H2Upstream;
  let secure: H2Upstream;
  let missing: H2Upstream;
  let reset: H2Upstream;
  let strict: Upstream;
  let port = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-h2-'));
    const answer = (stream: ServerHttp2Stream, seen: Seen): void => {
      if (String(seen.headers[':path']).startsWith('/accel/')) {
        stream.respond({ ':status': 200, 'x-accel-redirect': '/sink/done', 'set-cookie': 'kept=1' });
        stream.end('not this');
        return;
      }
      if (seen.headers[':path'] === '/trailers') {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 'foo' }));
        stream.end('SEE-THIS');
        return;
      }
      stream.respond({ ':status': 200, 'x-path': String(seen.headers[':path']), server: 'upstream', 'x-secret': 'hidden', 'set-cookie': ['a=1', 'b=2'] });
      stream.end(`body=${seen.body}`);
    };
    echo = await h2Upstream(answer);
    kept = await h2Upstream(answer);
    limited = await h2Upstream(answer);
    secure = await h2Upstream(answer, 'a-rsa');
    missing = await h2Upstream((stream) => {
      stream.respond({ ':status': 404 });
      stream.end('not here');
    });
    reset = await h2Upstream((stream) => {
      stream.on('error', () => undefined);
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
    // A raw h2 peer: on its first connection a header block whose empty Huffman string is padded
    // with 8 bits (RFC 7541 section 5.2: a decoding error; nginx lets it pass), then sound answers.
    strict = await rawUpstream((socket, index) => {
      let seen = 0;
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen < 24 + 9 + 9 || socket.writableEnded) return;
        const settings = Buffer.from('000000040000000000000000040100000000', 'hex');
        const bad = Buffer.from('0000130105000000014085b8848d36a38210014085416cee5b3f81ff', 'hex');
        const good = Buffer.from('00000101050000000188', 'hex');
        socket.write(Buffer.concat([settings, index === 0 ? bad : good]));
        // The refused block's connection stays open: a session that saw its peer's EOF would end
        // its streams at once (502); this one must be ended by the read timeout.
        if (index !== 0) socket.end();
      });
    });
    const down = await closedPort();
    served = await serve(
      `http {
        access_log off;
        upstream kept { server 127.0.0.1:${kept.port}; keepalive 4; }
        upstream limited { server 127.0.0.1:${limited.port}; keepalive 4; keepalive_requests 2; }
        upstream next { server 127.0.0.1:${missing.port}; server 127.0.0.1:${echo.port}; }
        upstream missing-first { server 127.0.0.1:${missing.port}; server 127.0.0.1:${echo.port} backup; }
        upstream dead { server 127.0.0.1:${down}; server 127.0.0.1:${echo.port}; }
        upstream strict { server 127.0.0.1:${strict.port}; keepalive 4; }
        server {
          listen 127.0.0.1:8080;
          http2 on;
          proxy_http_version 2;
          location / { proxy_pass http://127.0.0.1:${echo.port}; proxy_set_header X-Real $remote_addr; proxy_hide_header X-Secret; }
          location /rewritten/ { proxy_pass http://127.0.0.1:${echo.port}/inner/; }
          location /host/ { proxy_pass http://127.0.0.1:${echo.port}; proxy_set_header Host api.test; proxy_set_header Connection upgrade; }
          location /bare/ { proxy_pass http://127.0.0.1:${echo.port}; proxy_pass_request_headers off; proxy_pass_request_body off; }
          location /stream/ { proxy_pass http://127.0.0.1:${echo.port}; proxy_request_buffering off; }
          location /kept/ { proxy_pass http://kept; }
          location /limited/ { proxy_pass http://limited; }
          location /tls/ { proxy_pass https://127.0.0.1:${secure.port}; proxy_ssl_verify on; proxy_ssl_trusted_certificate ${TLS}ca.crt; proxy_ssl_name a.test; }
          location /trailers { proxy_pass http://127.0.0.1:${echo.port}; proxy_pass_trailers on; }
          location /no-trailers/ { proxy_pass http://127.0.0.1:${echo.port}/trailers; }
          location /next/ { proxy_pass http://next; proxy_next_upstream http_404; }
          location /next-file/ { proxy_pass http://missing-first; proxy_next_upstream http_404; client_body_buffer_size 1k; client_body_temp_path ${dir}/spool; }
          location /dead/ { proxy_pass http://dead; }
          location /reset/ { proxy_pass http://127.0.0.1:${reset.port}; }
          location /strict/ { proxy_pass http://strict; proxy_read_timeout 500ms; }
          location /method/ { proxy_pass http://127.0.0.1:${echo.port}; proxy_method PUT; }
          location /setbody/ { proxy_pass http://127.0.0.1:${echo.port}; proxy_set_body "replaced"; }
          location /accel/ { proxy_pass http://127.0.0.1:${echo.port}; }
          location /sink/ { return 200 "redirected $uri\n"; }
          location /file/ { proxy_pass http://127.0.0.1:${echo.port}; client_body_in_file_only clean; client_body_temp_path ${dir}/body; proxy_set_header X-File $request_body_file; }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
    port = served.port;
  });

  after(async () => {
    await served?.stop();
    for (const upstream of [echo, kept, limited, secure, missing, reset, strict]) await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const errorLog = (): string => readFileSync(join(dir, 'error.log'), 'utf8');

  it('shares the HTTP/1 proxy\'s request and response rules: proxy_method, proxy_set_body, X-Accel-Redirect, body files', async () => {
    let before = echo.seen.length;
    assert.match(await raw(port, 'POST /method/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'), /^HTTP\/1\.1 200 /);
    assert.equal(echo.seen[before]?.headers[':method'], 'PUT');
    assert.equal(echo.seen[before]?.body, 'hi');
    before = echo.seen.length;
    assert.match(await raw(port, 'POST /setbody/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'), /\r\nbody=replaced\r\n/);
    assert.equal(echo.seen[before]?.body, 'replaced');
    const accel = await raw(port, 'GET /accel/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.match(accel, /^HTTP\/1\.1 200 [^]*\r\nset-cookie: kept=1\r\n[^]*\r\n\r\nredirected \/sink\/done\n$/i);
    before = echo.seen.length;
    assert.match(await raw(port, 'POST /file/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello'), /\r\nbody=hello\r\n/);
    assert.match(String(echo.seen[before]?.headers['x-file']), new RegExp(`^${dir}/body/[0-9]{10}$`));
  });

  it('sends the pseudo-headers, proxy_set_header fields and the client\'s, never a connection-specific field', async () => {
    const before = echo.seen.length;
    const reply = await raw(port, 'POST /a?b=1 HTTP/1.1\r\nHost: front.test\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: foo\r\nX-Client: one\r\nX-Client: two\r\nContent-Length: 5\r\n\r\nhello');
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.equal(bodyOf(reply), 'body=hello');
    const seen = echo.seen[before];
    assert.ok(seen !== undefined);
    assert.equal(seen.headers[':method'], 'POST');
    assert.equal(seen.headers[':scheme'], 'http');
    assert.equal(seen.headers[':path'], '/a?b=1');
    // proxy_set_header Host $proxy_host, the default, is the :authority.
    assert.equal(seen.headers[':authority'], `127.0.0.1:${echo.port}`);
    assert.equal(seen.headers['x-real'], '127.0.0.1');
    assert.equal(seen.headers['content-length'], '5');
    assert.deepEqual(seen.raw.filter((_, i) => i % 2 === 0 && seen.raw[i] === 'x-client').length, 2);
    for (const name of ['host', 'connection', 'keep-alive', 'te', 'upgrade', 'x-hop']) assert.equal(seen.headers[name], undefined, name);
    // The response as the HTTP/1 proxy passes it: Server and hidden fields dropped, both cookies kept.
    assert.doesNotMatch(reply, /upstream|x-secret/i);
    assert.equal(reply.match(/set-cookie: [ab]=\d/gi)?.length, 2);
  });

  it('rewrites the URI as proxy_pass with a URI part does, and sends Host as :authority', async () => {
    assert.equal((await get(port, '/rewritten/x')).headers['x-path'], '/inner/x');
    const before = echo.seen.length;
    assert.equal((await get(port, '/host/y')).status, 200);
    assert.equal(echo.seen[before]?.headers[':authority'], 'api.test');
    assert.equal(echo.seen[before]?.headers.connection, undefined);
  });

  it('passes no header nor body with proxy_pass_request_headers and proxy_pass_request_body off', async () => {
    const before = echo.seen.length;
    const reply = await raw(port, 'POST /bare/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Client: one\r\nContent-Length: 3\r\n\r\nbar');
    assert.equal(bodyOf(reply), 'body=');
    const seen = echo.seen[before];
    assert.equal(seen?.headers['x-client'], undefined);
    assert.equal(seen?.headers['content-length'], undefined);
  });

  it('streams a chunked body with proxy_request_buffering off, without Content-Length, a client read to a DATA frame', async () => {
    const before = echo.seen.length;
    const reply = await raw(port, 'POST /stream/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n4\r\nmany\r\n0\r\n\r\n');
    assert.equal(bodyOf(reply), 'body=01234many');
    const seen = echo.seen[before];
    assert.equal(seen?.headers['content-length'], undefined);
    assert.deepEqual(seen?.chunks, [9]);
  });

  it('opens a session per request without keepalive, and reuses one with it', async () => {
    const fresh = echo.sessions;
    await get(port, '/one');
    await get(port, '/two');
    assert.equal(echo.sessions - fresh, 2);
    await get(port, '/kept/1');
    await get(port, '/kept/2');
    await get(port, '/kept/3');
    assert.equal(kept.sessions, 1);
    assert.equal(kept.seen.length, 3);
  });

  it('takes a kept session out after keepalive_requests streams', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await get(port, `/limited/${i}`)).status, 200);
    assert.equal(limited.sessions, 3);
  });

  it('speaks TLS with ALPN h2 to proxy_pass https://, verified against proxy_ssl_name', async () => {
    const reply = await get(port, '/tls/z');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-path'], '/tls/z');
    assert.deepEqual(secure.alpn, ['h2']);
    assert.equal(secure.seen[0]?.headers[':scheme'], 'https');
  });

  it('passes the upstream\'s trailers with proxy_pass_trailers on, and only then', async () => {
    const passed = await h2Get(port, '/trailers');
    assert.equal(passed.body, 'SEE-THIS');
    assert.equal(passed.trailers?.['x-trailer'], 'foo');
    const chunked = await raw(port, 'GET /trailers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTE: trailers\r\n\r\n');
    assert.match(chunked, /Transfer-Encoding: chunked[\s\S]*SEE-THIS\r\n0\r\nx-trailer: foo\r\n\r\n$/i);
    const dropped = await h2Get(port, '/no-trailers/');
    assert.equal(dropped.body, 'SEE-THIS');
    assert.equal(dropped.trailers, undefined);
  });

  it('tries the next peer on an h2 404 with proxy_next_upstream http_404, the buffered body sent again', async () => {
    const before = echo.seen.length;
    const reply = await raw(port, 'GET /next/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nagai\r\n1\r\nn\r\n0\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.equal(bodyOf(reply), 'body=again');
    assert.equal(missing.seen.at(-1)?.body, 'again');
    assert.equal(echo.seen[before]?.headers['content-length'], '5');
  });

  it('sends a body spooled past client_body_buffer_size from its file, and all of it again to the next peer', async () => {
    const before = echo.seen.length;
    // Past the stream's 64 KiB window: the file is read back as the stream takes it.
    const body = Array.from({ length: 30_000 }, (_, i) => String(i % 10)).join('').repeat(10);
    const tried = missing.seen.length;
    const reply = await raw(port, `PUT /next-file/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.equal(missing.seen.length, tried + 1);
    assert.ok(missing.seen.at(-1)?.body === body, 'the first peer got the whole body');
    assert.ok(echo.seen[before]?.body === body, 'the next peer got the whole body again');
    assert.equal(echo.seen[before]?.headers['content-length'], String(body.length));
    assert.match(errorLog(), /\[warn\] .*a client request body is buffered to a temporary file .*\/spool\/[0-9]{10}, client: 127\.0\.0\.1, .*request: "PUT \/next-file\/ HTTP\/1\.1"/);
  });

  it('moves on from a peer that refuses the connection', async () => {
    assert.equal((await get(port, '/dead/')).status, 200);
    assert.match(errorLog(), /connect\(\) failed \(111: Connection refused\) while connecting to upstream/);
  });

  it('answers 502 to a RST_STREAM before the response, in nginx\'s words', async () => {
    const reply = await get(port, '/reset/');
    assert.equal(reply.status, 502);
    assert.match(errorLog(), /upstream rejected request with error 2 while reading response header from upstream, client: 127\.0\.0\.1, server: , request: "GET \/reset\/ HTTP\/1\.1", upstream: "http:\/\/127\.0\.0\.1:\d+\/reset\/"/);
  });

  it('drops a kept session whose stream timed out: one node:http2 silently stopped reading takes no more requests', { timeout: 10_000 }, async () => {
    assert.equal((await get(port, '/strict/1')).status, 504);
    assert.equal((await get(port, '/strict/2')).status, 200);
    assert.equal(strict.connections, 2);
  });
});
