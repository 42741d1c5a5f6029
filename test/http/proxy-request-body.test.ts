/**
 * What nginx-tests' proxy_request_buffering*.t, proxy_duplicate_headers.t and proxy_bind.t found:
 * with proxy_request_buffering off the body read with the head goes in the head's write, a
 * chunked body goes one chunk per client read, $request_body keeps a body that fits
 * client_body_buffer_size, and an upstream that answered before the body was sent is not kept;
 * an upstream's second Transfer-Encoding is a 502 and a second Content-Type a [warn]; proxy_bind's
 * failures are nginx's: a bad value an [error] (and no bind), a failed bind() a crit and a 500.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { errorOf, load, RawClient, recordingLog, serve, type Served } from './helpers.js';
import { httpUpstream, rawUpstream, type Upstream } from './proxy-upstreams.js';

/** Resolves with the first `data` event of the next connection `upstream` accepts. */
function firstRead(reads: ((chunk: string, socket: Socket) => void)[]): Promise<{ chunk: string; socket: Socket }> {
  return new Promise((resolve) => reads.push((chunk, socket) => resolve({ chunk, socket })));
}

describe('proxy_request_buffering off, the upstream header rules and proxy_bind', () => {
  let raw: Upstream;
  let early: Upstream;
  let app: Upstream;
  let served: Served;
  const lines: string[] = [];
  const reads: ((chunk: string, socket: Socket) => void)[] = [];

  before(async () => {
    // Hands each connection's first read to the test waiting for it, then answers when told.
    raw = await rawUpstream((socket) => {
      socket.setEncoding('latin1');
      socket.once('data', (chunk: string) => reads.shift()?.(chunk, socket));
    });
    // Answers at once, without reading the body the head announced.
    early = await rawUpstream((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    });
    app = await httpUpstream((req, res) => {
      if (req.url === '/dup-te') {
        res.socket?.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
        return;
      }
      if (req.url === '/dup-type') {
        res.socket?.end('HTTP/1.1 200 OK\r\nContent-Type: text/one\r\nContent-Type: text/two\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
        return;
      }
      const text = `seen ${req.socket.remoteAddress ?? ''}`;
      res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    served = await serve(
      `http {
        upstream early { server 127.0.0.1:${early.port}; keepalive 1; }
        server {
          listen 80;
          proxy_request_buffering off;
          location /raw { proxy_pass http://127.0.0.1:${raw.port}; }
          location /raw11 { proxy_pass http://127.0.0.1:${raw.port}; proxy_http_version 1.1; }
          location /body { proxy_pass http://127.0.0.1:${app.port}/; add_header X-Body $request_body; client_body_buffer_size 16; }
          location /early { proxy_pass http://early; proxy_http_version 1.1; proxy_set_header Connection ""; }
          location /dup-te { proxy_pass http://127.0.0.1:${app.port}; }
          location /dup-type { proxy_pass http://127.0.0.1:${app.port}; }
          location /bind { proxy_pass http://127.0.0.1:${app.port}/; proxy_bind $arg_b; }
          location /bind-busy { proxy_pass http://127.0.0.1:${app.port}/; proxy_bind 127.0.0.1:${app.port}; }
        }
      }`,
      '/srv/hitless',
      recordingLog(lines),
    );
  });

  after(async () => {
    await served?.stop();
    await raw?.stop();
    await early?.stop();
    await app?.stop();
  });

  it('sends the body bytes read with the head in the head\'s write', async () => {
    const client = await RawClient.connect(served.port);
    const read = firstRead(reads);
    client.send('GET /raw HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234');
    const { chunk, socket } = await read;
    assert.match(chunk, /^GET \/raw HTTP\/1\.0\r\n[^]*Content-Length: 10\r\n\r\n01234$/);
    const rest = new Promise<string>((resolve) => socket.once('data', (more: string) => resolve(more)));
    client.send('56789');
    assert.equal(await rest, '56789');
    socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal((await client.read()).body, 'ok');
    client.destroy();
  });

  it('frames a chunked body one chunk per client read', async () => {
    const client = await RawClient.connect(served.port);
    const read = firstRead(reads);
    client.send('GET /raw11 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n4\r\nmany\r\n');
    const { chunk, socket } = await read;
    assert.match(chunk, /\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n01234many\r\n$/);
    const rest = new Promise<string>((resolve) => socket.once('data', (more: string) => resolve(more)));
    client.send('5\r\n56789\r\n0\r\n\r\n');
    assert.equal(await rest, '5\r\n56789\r\n0\r\n\r\n');
    socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
    assert.equal((await client.read()).body, 'ok');
    client.destroy();
  });

  it('keeps a body that fits client_body_buffer_size for $request_body, and not a longer one', async () => {
    const client = await RawClient.connect(served.port);
    client.send('POST /body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n0123456789');
    assert.equal((await client.read()).headers['x-body'], '0123456789');
    client.send('POST /body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\n\r\n01234567890123456789');
    assert.equal((await client.read()).headers['x-body'], undefined);
    client.destroy();
  });

  it('does not keep an upstream connection that answered before the body was sent', async () => {
    const first = await RawClient.connect(served.port);
    first.send('GET /early HTTP/1.0\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n');
    assert.equal((await first.read()).body, 'ok');
    first.destroy();
    const second = await RawClient.connect(served.port);
    assert.equal((await second.get('/early', 'localhost', 'Connection: close\r\n')).body, 'ok');
    second.destroy();
    assert.equal(early.connections, 2, 'the second request had a connection of its own');
  });

  it('answers 502 to a second Transfer-Encoding and drops a second Content-Type with a [warn]', async () => {
    const client = await RawClient.connect(served.port);
    assert.equal((await client.get('/dup-te')).status, 502);
    client.destroy();
    assert.ok(lines.some((line) => line.startsWith('[error] upstream sent duplicate header line: "Transfer-Encoding: chunked", previous value: "Transfer-Encoding: chunked" while reading response header from upstream')), lines.join('\n'));
    const other = await RawClient.connect(served.port);
    const answer = await other.get('/dup-type');
    other.destroy();
    assert.equal(answer.headers['content-type'], 'text/one');
    assert.ok(lines.some((line) => line.startsWith('[warn] upstream sent duplicate header line: "Content-Type: text/two", previous value: "Content-Type: text/one", ignored')), lines.join('\n'));
  });

  it('proxy_bind: a value that is no address is an [error] and binds none; a failed bind() is a crit and a 500', async () => {
    const client = await RawClient.connect(served.port);
    assert.equal((await client.get('/bind?b=not-an-address')).body, 'seen 127.0.0.1');
    assert.ok(lines.some((line) => line.startsWith('[error] invalid local address "not-an-address"')), lines.join('\n'));
    assert.equal((await client.get('/bind?b=127.0.0.2')).body, 'seen 127.0.0.2');
    assert.equal((await client.get('/bind-busy')).status, 500);
    client.destroy();
    assert.ok(lines.some((line) => new RegExp(`^\\[crit\\] bind\\(127\\.0\\.0\\.1:${app.port}\\) failed \\(98: Address already in use\\) while connecting to upstream`).test(line)), lines.join('\n'));
  });
});

describe('proxy_bind and the proxy_* directives at -t', () => {
  it('says at [warn] that transparent is not supported, and what is done instead', () => {
    const config = load('http { server { location / { proxy_bind 127.0.0.2 transparent; proxy_pass http://127.0.0.1:1; } } }');
    const warnings = config.warnings.map((warning) => warning.message);
    assert.deepEqual(warnings, ['"transparent" of "proxy_bind" is not supported by hitless (Node.js cannot set IP_TRANSPARENT on a socket): the address is bound without it, so only a local address works in /x.conf:1']);
  });

  it('refuses what nginx refuses, in its words', () => {
    const at = (directive: string): string => errorOf(`http { server { location / { ${directive} proxy_pass http://127.0.0.1:1; } } }`);
    assert.equal(at('proxy_bind localhost;'), 'invalid address "localhost" in /x.conf:1');
    assert.equal(at('proxy_bind 127.0.0.1 foo;'), 'invalid parameter "foo" in /x.conf:1');
    assert.equal(at('proxy_bind off; proxy_bind off;'), '"proxy_bind" directive is duplicate in /x.conf:1');
    assert.equal(at('proxy_ignore_headers X-Foo;'), 'invalid value "X-Foo" in /x.conf:1');
    assert.equal(at('proxy_cookie_domain off; proxy_cookie_domain a b;'), '"proxy_cookie_domain" directive is duplicate in /x.conf:1');
    assert.equal(at('proxy_cookie_path a;'), 'invalid parameter "a" in /x.conf:1');
    assert.equal(at('proxy_cookie_flags off; proxy_cookie_flags off;'), '"proxy_cookie_flags" directive is duplicate in /x.conf:1');
    assert.equal(at('proxy_method $nope;'), 'unknown "nope" variable');
  });
});
