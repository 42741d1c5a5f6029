/**
 * The rest of ngx_http_core_module: server_tokens, the request head limits (414, 494),
 * underscores_in_headers, ignore_invalid_headers, merge_slashes, keepalive_disable, msie_padding,
 * chunked_transfer_encoding, recursive_error_pages, lingering_close, reset_timedout_connection,
 * limit_except, and the [warn] of the directives hitless cannot apply. Real sockets on loopback.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../../src/core/version.js';
import { errorOf, load, RawClient, serve, type Served } from './helpers.js';
import { rawUpstream, type Upstream } from './proxy-upstreams.js';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
const SAFARI = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15';
const MSIE6 = 'Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)';

describe('core directives at -t', () => {
  it('warns, in one wording, for each directive hitless cannot apply, and not for what it does anyway', () => {
    const config = load(`http {
      client_body_temp_path /tmp/body 1 2;
      proxy_temp_path /tmp/proxy;
      server_names_hash_bucket_size 128;
      variables_hash_max_size 2048;
      client_body_buffer_size 128k;
      client_body_in_file_only off;
      proxy_max_temp_file_size 0;
      proxy_buffers 16 8k;
    }`);
    const lines = config.warnings.map((warning) => warning.message);
    assert.equal(lines.length, 4, lines.join('\n'));
    for (const line of lines) assert.match(line, /^"[a-z_]+" has no effect in hitless \(.+\) in \/x\.conf:\d+$/);
    // client_body_temp_path and client_body_buffer_size do what nginx's do (body-file.ts).
    assert.deepEqual(config.warnings.map((warning) => warning.location?.line), [3, 4, 5, 9]);
  });

  it('refuses bad values in nginx\'s words', () => {
    assert.match(errorOf('http { server_tokens maybe; }'), /^invalid value "maybe" in \/x\.conf:1$/);
    assert.match(errorOf('http { large_client_header_buffers 4 0; }'), /^invalid value "0" in/);
    assert.match(errorOf('http { large_client_header_buffers 4; }'), /^invalid number of arguments in "large_client_header_buffers" directive in/);
    assert.match(errorOf('http { keepalive_disable opera; }'), /^invalid value "opera" in/);
    assert.match(errorOf('http { lingering_close sometimes; }'), /^invalid value "sometimes" in/);
    assert.match(errorOf('http { server { location / { limit_except FETCH { } } } }'), /^invalid method "FETCH" in/);
    assert.match(errorOf('http { server { location / { limit_except GET { } limit_except POST { } } } }'), /^"limit_except" directive is duplicate in/);
    assert.match(errorOf('http { server { limit_except GET { } } }'), /^"limit_except" directive is not allowed here in/);
    assert.match(errorOf('http { server { merge_slashes on; location / { merge_slashes off; } } }'), /^"merge_slashes" directive is not allowed here in/);
  });

  it('keepalive_disable: none wins, a value twice warns as nginx does', () => {
    const config = load('http { keepalive_disable msie6 msie6; server { keepalive_disable none safari; } }');
    assert.deepEqual(config.warnings.map((warning) => warning.message), ['duplicate value "msie6" in /x.conf:1']);
    assert.deepEqual(config.main.child('http')?.children('server')[0]?.get('keepalive_disable'), { msie6: false, safari: false });
  });

  it('reads limit_except\'s methods, GET bringing HEAD', () => {
    const config = load('http { server { location / { limit_except get POST { } } } }');
    const location = config.main.child('http')?.children('server')[0]?.children('location')[0];
    const block = location?.children('limit_except')[0];
    assert.deepEqual([...(block?.value as { methods: Set<string> }).methods].sort(), ['GET', 'HEAD', 'POST']);
  });
});

describe('core directives on the wire', () => {
  let served: Served;
  let upstream: Upstream;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-core-'));
    mkdirSync(join(dir, 'safari-static'));
    writeFileSync(join(dir, 'safari-static', 'file'), 'static\n');
    // An upstream whose responses have no length: the body ends with the connection.
    upstream = await rawUpstream((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the close'));
    });
    served = await serve(
      `http {
        server {
          listen 127.0.0.1:8080;
          large_client_header_buffers 2 1k;
          location / { return 200 "x=$http_x_under y=$http_x_at\\n"; }
          location /off/ { server_tokens off; return 404; }
          location /nopad/ { msie_padding off; return 404; }
          location /404/ { return 404; }
          location = /a//b { return 200 "kept\\n"; }
          location = /a/b { return 200 "merged\\n"; }
          location /stream/ { proxy_pass http://127.0.0.1:${upstream.port}; }
          location /nochunk/ { chunked_transfer_encoding off; proxy_pass http://127.0.0.1:${upstream.port}; }
          location /safari/ { keepalive_disable safari; return 200 "ok\\n"; }
          location /safari-static/ { keepalive_disable safari; root ${dir}; }
          location /first/ { error_page 404 /second/; return 404; }
          location /second/ { error_page 404 /third/; return 404; }
          location /third/ { return 200 "third\\n"; }
          location /rfirst/ { recursive_error_pages on; error_page 404 /rsecond/; return 404; }
          location /rsecond/ { recursive_error_pages on; error_page 404 /third/; return 404; }
          location /loop/ { recursive_error_pages on; error_page 404 /loop/again; return 404; }
        }
        server {
          listen 127.0.0.1:8081;
          underscores_in_headers on;
          ignore_invalid_headers off;
          merge_slashes off;
          client_header_timeout 200ms;
          reset_timedout_connection on;
          location / { return 200 "x=$http_x_under y=$http_x_at\\n"; }
          location = /a//b { return 200 "kept\\n"; }
          location = /a/b { return 200 "merged\\n"; }
        }
        server {
          listen 127.0.0.1:8082;
          client_header_timeout 200ms;
          location / { return 200; }
        }
      }`,
      dir,
    );
  });

  after(async () => {
    await served?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const port = (key: string): number => served.ports.get(key) ?? 0;

  async function once(key: string, request: string): Promise<{ status: number; headers: Readonly<Record<string, string>>; body: string }> {
    const client = await RawClient.connect(port(key));
    try {
      client.send(request);
      return await client.read();
    } finally {
      client.destroy();
    }
  }

  it('server_tokens: the version in Server and in the page footer by default, none with off', async () => {
    const on = await once('127.0.0.1:8080', 'GET /missing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(on.headers.server, `hitless/${VERSION}`);
    const off = await once('127.0.0.1:8080', 'GET /off/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(off.status, 404);
    assert.equal(off.headers.server, 'hitless');
    assert.match(off.body, /<hr><center>hitless<\/center>\r\n<\/body>/);
  });

  it('answers 414 for a request line over large_client_header_buffers and 400 "Request Header Or Cookie Too Large" for a header line', async () => {
    const uri = await once('127.0.0.1:8080', `GET /${'a'.repeat(1100)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(uri.status, 414);
    assert.match(uri.body, /<title>414 Request-URI Too Large<\/title>/);
    assert.equal(uri.headers.connection, 'close');
    const header = await once('127.0.0.1:8080', `GET / HTTP/1.1\r\nHost: a\r\nX-Long: ${'b'.repeat(1100)}\r\n\r\n`);
    assert.equal(header.status, 400);
    assert.match(header.body, /<title>400 Request Header Or Cookie Too Large<\/title>/);
    const head = await once('127.0.0.1:8080', `GET / HTTP/1.1\r\nHost: a\r\n${'X-Many: cccccccccccccccccccc\r\n'.repeat(150)}\r\n`);
    assert.equal(head.status, 400);
    assert.match(head.body, /Request Header Or Cookie Too Large/);
    const fits = await once('127.0.0.1:8080', `GET /${'a'.repeat(900)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.equal(fits.status, 200);
  });

  it('drops headers with an underscore by default, keeps them with underscores_in_headers on', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: a\r\nX_Under: 1\r\nX-At: 2\r\nConnection: close\r\n\r\n';
    assert.equal((await once('127.0.0.1:8080', request)).body, 'x= y=2\n');
    assert.equal((await once('127.0.0.1:8081', request)).body, 'x=1 y=2\n');
  });

  it('ignore_invalid_headers off keeps a header name nginx calls invalid instead of refusing the request', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: a\r\nX.Dot: 1\r\nX-At: 2\r\nConnection: close\r\n\r\n';
    assert.equal((await once('127.0.0.1:8080', request)).status, 200);
    assert.equal((await once('127.0.0.1:8081', request)).status, 200);
  });

  it('merge_slashes: merged by default, kept with off', async () => {
    assert.equal((await once('127.0.0.1:8080', 'GET /a//b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).body, 'merged\n');
    assert.equal((await once('127.0.0.1:8081', 'GET /a//b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).body, 'kept\n');
  });

  it('msie_padding: built-in pages for MSIE and Chrome are padded, unless off', async () => {
    const chrome = await once('127.0.0.1:8080', `GET /404/ HTTP/1.1\r\nHost: a\r\nUser-Agent: ${CHROME}\r\nConnection: close\r\n\r\n`);
    assert.match(chrome.body, /<\/html>\r\n(<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n){6}$/);
    assert.equal(Number(chrome.headers['content-length']), chrome.body.length);
    const plain = await once('127.0.0.1:8080', 'GET /404/ HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8\r\nConnection: close\r\n\r\n');
    assert.doesNotMatch(plain.body, /padding/);
    const off = await once('127.0.0.1:8080', `GET /nopad/ HTTP/1.1\r\nHost: a\r\nUser-Agent: ${CHROME}\r\nConnection: close\r\n\r\n`);
    assert.doesNotMatch(off.body, /padding/);
  });

  it('keepalive_disable: msie6 after a POST by default, safari where configured', async () => {
    const client = await RawClient.connect(port('127.0.0.1:8080'));
    try {
      const get = await client.get('/', 'a', `User-Agent: ${MSIE6}\r\n`);
      assert.equal(get.headers.connection, 'keep-alive');
      client.send(`POST / HTTP/1.1\r\nHost: a\r\nUser-Agent: ${MSIE6}\r\nContent-Length: 0\r\n\r\n`);
      assert.equal((await client.read()).headers.connection, 'close');
    } finally {
      client.destroy();
    }
    const safari = await RawClient.connect(port('127.0.0.1:8080'));
    try {
      assert.equal((await safari.get('/', 'a', `User-Agent: ${SAFARI}\r\n`)).headers.connection, 'keep-alive');
      assert.equal((await safari.get('/safari/', 'a', `User-Agent: ${SAFARI}\r\n`)).headers.connection, 'close');
    } finally {
      safari.destroy();
    }
    // A static file's response did not apply keepalive_disable: only return and proxy did (http_keepalive.t).
    const staticFile = await RawClient.connect(port('127.0.0.1:8080'));
    try {
      const reply = await staticFile.get('/safari-static/file', 'a', `User-Agent: ${SAFARI}\r\n`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.connection, 'close');
    } finally {
      staticFile.destroy();
    }
  });

  it('chunked_transfer_encoding off: a body of unknown length ends with the connection', async () => {
    const raw = (path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        let text = '';
        const socket = connect(port('127.0.0.1:8080'), '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`));
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => {
          text += chunk;
          // A chunked response ends with its last chunk; the connection stays open.
          if (text.endsWith('0\r\n\r\n')) socket.destroy();
        });
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
      });
    const chunked = await raw('/stream/');
    assert.match(chunked, /\r\nTransfer-Encoding: chunked\r\n/);
    const plain = await raw('/nochunk/');
    assert.doesNotMatch(plain, /Transfer-Encoding/);
    assert.match(plain, /\r\nConnection: close\r\n\r\nto the close$/);
  });

  it('recursive_error_pages: one error page by default, a chain when on, and nginx\'s cycle limit', async () => {
    // error_page without =code keeps the first status: 404 with the page's body.
    const single = await once('127.0.0.1:8080', 'GET /first/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(single.status, 404);
    assert.match(single.body, /<title>404 Not Found<\/title>/);
    const chain = await once('127.0.0.1:8080', 'GET /rfirst/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(chain.status, 404);
    assert.equal(chain.body, 'third\n');
    const loop = await once('127.0.0.1:8080', 'GET /loop/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(loop.status, 500);
  });

  it('reset_timedout_connection: a request head that times out ends with RST when on, FIN when off', async () => {
    const reset = await RawClient.connect(port('127.0.0.1:8081'));
    reset.send('GET / HTTP/1.1\r\n');
    await reset.closed;
    assert.equal((reset.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
    const fin = await RawClient.connect(port('127.0.0.1:8082'));
    fin.send('GET / HTTP/1.1\r\n');
    await fin.closed;
    assert.equal(fin.error, undefined);
    assert.equal(fin.ended, true);
  });
});
