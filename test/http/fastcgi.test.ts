/**
 * fastcgi_pass against a FastCGI server written here (real loopback sockets), for what a real
 * PHP-FPM never does: malformed heads, a close in the middle of a record, silence, stderr caught
 * by fastcgi_catch_stderr; and the records and directives themselves.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { errorOf, get, load, recordingLog, serve, type Served } from './helpers.js';
import { beginRequest, paramsRecords, RecordReader, RecordType, stdinRecords } from '../../src/http/fastcgi-records.js';

/** Reads the records a client sends (BEGIN_REQUEST, PARAMS, STDIN), as a FastCGI server would. */
function readRecords(data: Buffer): { type: number; content: Buffer }[] {
  const out: { type: number; content: Buffer }[] = [];
  let at = 0;
  while (at + 8 <= data.length) {
    const length = data.readUInt16BE(at + 4);
    const padding = data[at + 6] ?? 0;
    out.push({ type: data[at + 1] ?? 0, content: data.subarray(at + 8, at + 8 + length) });
    at += 8 + length + padding;
  }
  return out;
}

function params(content: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  const len = (): number => {
    const first = content[at] ?? 0;
    if (first < 128) {
      at += 1;
      return first;
    }
    const value = content.readUInt32BE(at) & 0x7fffffff;
    at += 4;
    return value;
  };
  while (at < content.length) {
    const nameLength = len();
    const valueLength = len();
    out.set(content.toString('latin1', at, at + nameLength), content.toString('latin1', at + nameLength, at + nameLength + valueLength));
    at += nameLength + valueLength;
  }
  return out;
}

function record(type: number, content: string | Buffer, padding = 0): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'latin1') : content;
  const head = Buffer.from([1, type, 0, 1, body.length >> 8, body.length & 0xff, padding, 0]);
  return Buffer.concat([head, body, Buffer.alloc(padding)]);
}

const END = record(3, Buffer.alloc(8));

describe('fastcgi: records', () => {
  it('pads every record to 8 bytes and writes long name-value lengths in 4 bytes', () => {
    const sent = Buffer.concat([beginRequest(true), ...paramsRecords([['A', 'b'], ['LONG', 'x'.repeat(200)]]), ...stdinRecords(Buffer.alloc(70_000, 'y'))]);
    const records = readRecords(sent);
    assert.deepEqual(records.map((r) => r.type), [1, 4, 4, 5, 5, 5]);
    assert.equal(records[0]?.content[2], 1, 'FCGI_KEEP_CONN');
    assert.deepEqual([...params(records[1]?.content as Buffer)], [['A', 'b'], ['LONG', 'x'.repeat(200)]]);
    assert.equal(records.slice(3).reduce((sum, r) => sum + r.content.length, 0), 70_000);
    assert.equal(sent.length % 8, 0);
  });

  it('splits PARAMS longer than 32 KiB into records, a pair across two, padding only the last', () => {
    const long = 'v'.repeat(40_000);
    const sent = Buffer.concat(paramsRecords([['SHORT', 'x'], ['LONG', long], ['AFTER', 'y'.repeat(130)]]));
    const records = readRecords(sent);
    assert.deepEqual(records.map((r) => [r.type, r.content.length]), [[4, 32_768], [4, 7_389], [4, 0]]);
    assert.deepEqual([...params(Buffer.concat(records.map((r) => r.content)))], [['SHORT', 'x'], ['LONG', long], ['AFTER', 'y'.repeat(130)]]);
    assert.equal(sent[6], 0, 'no padding on a full record');
    assert.equal(sent[8 + 32_768 + 6], 3, 'the last one padded to 8 bytes');
    assert.equal(sent.length % 8, 0);
  });

  it('reads STDOUT, STDERR and END_REQUEST split at every byte', () => {
    const wire = Buffer.concat([record(6, 'Status: 200\r\n\r\nhello', 3), record(7, 'warn\n'), record(6, ''), END]);
    const seen: string[] = [];
    const reader = new RecordReader({
      content: (type, data, end) => seen.push(`${type === RecordType.Stdout ? 'out' : 'err'}:${data.toString('latin1')}:${end}`),
      endRequest: () => seen.push('end'),
      invalid: (message) => seen.push(`invalid:${message}`),
    });
    for (let i = 0; i < wire.length; i++) reader.push(wire.subarray(i, i + 1));
    assert.equal(seen.filter((entry) => entry.startsWith('out:')).map((entry) => entry.slice(4, entry.lastIndexOf(':'))).join(''), 'Status: 200\r\n\r\nhello');
    assert.equal(seen.filter((entry) => entry.startsWith('err:')).map((entry) => entry.slice(4, entry.lastIndexOf(':'))).join(''), 'warn\n');
    assert.equal(seen.at(-1), 'end');
    assert.ok(reader.done);
  });

  it('refuses a record type no responder sends', () => {
    const seen: string[] = [];
    const reader = new RecordReader({ content: () => undefined, endRequest: () => undefined, invalid: (message) => seen.push(message) });
    reader.push(record(9, 'x'));
    assert.deepEqual(seen, ['upstream sent invalid FastCGI record type: 9']);
  });
});

describe('fastcgi: directives', () => {
  it('parses fastcgi_pass, fastcgi_param with if_not_empty, and nginx\'s inheritance of fastcgi_param', () => {
    const http = load('http { fastcgi_param A 1; server { location / { fastcgi_pass 127.0.0.1:9000; } location /own { fastcgi_param B $uri if_not_empty; fastcgi_pass unix:/run/php.sock; } } }').main.child('http');
    const [inherits, own] = http?.blocks[0]?.blocks ?? [];
    assert.deepEqual(inherits?.get('fastcgi_param').map((param) => param.name), ['A']);
    assert.deepEqual(own?.get('fastcgi_param').map((param) => [param.name, param.ifNotEmpty]), [['B', true]]);
    assert.equal(own?.get('fastcgi_pass').host, 'unix:/run/php.sock');
  });

  it('warns at -t that the buffer sizes do not apply, and what hitless does instead', () => {
    const warnings = load('http { fastcgi_buffers 16 16k; fastcgi_buffer_size 32k; fastcgi_temp_path /tmp/fcgi; fastcgi_max_temp_file_size 0; }').warnings.map((warning) => warning.message);
    assert.deepEqual(warnings, [
      '"fastcgi_buffers" has no effect in hitless (fastcgi responses are streamed through Node\'s socket buffers; with fastcgi_buffering on hitless reads up to 1 MiB ahead of a slow client, in memory) in /x.conf:1',
      '"fastcgi_buffer_size" has no effect in hitless (a FastCGI response head may take 32 KiB, whatever the size) in /x.conf:1',
      '"fastcgi_temp_path" has no effect in hitless (hitless writes no temporary files for proxied responses: they are streamed to the client with back-pressure) in /x.conf:1',
    ]);
  });

  it('refuses what nginx -t refuses, in its words', () => {
    assert.equal(errorOf('http { server { location / { fastcgi_pass 127.0.0.1; } } }'), 'no port in upstream "127.0.0.1" in /x.conf:1');
    assert.match(errorOf('http { server { location / { fastcgi_split_path_info ^(.+\\.php)$; } } }'), /^pattern "\^\(\.\+\\\.php\)\$" must have 2 captures in/);
    assert.match(errorOf('http { fastcgi_param A b c; }'), /^invalid parameter "c" in/);
    assert.match(errorOf('http { fastcgi_ignore_headers X-Nope; }'), /^invalid value "X-Nope" in/);
    assert.match(errorOf('http { server { fastcgi_pass 127.0.0.1:1; } }'), /^"fastcgi_pass" directive is not allowed here in/);
  });
});

describe('fastcgi: a FastCGI server that misbehaves', () => {
  let upstream: Server;
  /** A FastCGI server that never reads: what hitless writes piles up in the socket buffers. */
  let deaf: Server;
  let served: Served;
  const lines: string[] = [];
  const sockets = new Set<Socket>();

  before(async () => {
    upstream = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let data = Buffer.alloc(0);
      let answered = false;
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        const records = readRecords(data);
        // Answer once the empty STDIN record ends the request.
        if (answered || !records.some((r) => r.type === 5 && r.content.length === 0)) return;
        answered = true;
        const sent = params(Buffer.concat(records.filter((r) => r.type === 4).map((r) => r.content)));
        const uri = sent.get('REQUEST_URI') ?? '';
        if (uri === '/length') socket.end(Buffer.concat([record(6, `Status: 200\r\n\r\ncl=${sent.get('CONTENT_LENGTH') ?? '(none)'}`), END]));
        if (uri === '/malformed') socket.end(Buffer.concat([record(6, 'Bad Header Line\r\n\r\n'), END]));
        else if (uri === '/midrecord') socket.end(record(6, 'Status: 200\r\n\r\nhello').subarray(0, 12));
        else if (uri === '/catch') socket.end(Buffer.concat([record(7, 'PHP Fatal error: boom\n'), record(6, 'Status: 200\r\n\r\nok'), END]));
        else if (uri === '/status') socket.end(Buffer.concat([record(6, 'Status: 418 Teapot\r\nX-Accel-Expires: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nteapot'), record(6, ''), END]));
        else if (uri === '/auth') socket.end(Buffer.concat([record(6, 'Status: 401\r\nWWW-Authenticate: Basic realm="php"\r\n\r\nno'), END]));
        else if (uri === '/location') socket.end(Buffer.concat([record(6, 'Location: http://example.com/x\r\n\r\n'), END]));
        // /silent: never answers.
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    deaf = createServer({ pauseOnConnect: true }, (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => deaf.listen(0, '127.0.0.1', resolve));
    const deafAddress = deaf.address();
    const deafPort = typeof deafAddress === 'object' && deafAddress !== null ? deafAddress.port : 0;
    served = await serve(
      `http { server { listen 127.0.0.1:8080; location / {
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_param CONTENT_LENGTH $content_length;
        fastcgi_read_timeout 300ms;
        fastcgi_catch_stderr "boom";
        fastcgi_pass 127.0.0.1:${port};
      }
      location /auth {
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_intercept_errors on;
        error_page 401 /denied;
        fastcgi_pass 127.0.0.1:${port};
      }
      location = /denied { return 401 "denied"; }
      location /deaf {
        client_max_body_size 64m;
        fastcgi_send_timeout 300ms;
        fastcgi_pass 127.0.0.1:${deafPort};
      } } }`,
      '/tmp/',
      recordingLog(lines),
    );
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    upstream.close();
    deaf.close();
    await served.stop();
  });

  it('$content_length of a chunked body read whole is its length, as nginx sets it', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: served.port, path: '/length', method: 'POST', agent: false, headers: { host: 'localhost', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.write('foo');
      req.end('bar');
    });
    assert.equal(answer, 'cl=6');
  });

  it('answers 502 to a malformed head, with nginx\'s log line', async () => {
    assert.equal((await get(served.port, '/malformed')).status, 502);
    assert.ok(lines.some((line) => line.startsWith('[error] upstream sent invalid header: "Bad Header Line" while reading response header from upstream')), lines.join('\n'));
  });

  it('answers 502 to a close in the middle of a record', async () => {
    assert.equal((await get(served.port, '/midrecord')).status, 502);
    assert.ok(lines.some((line) => line.startsWith('[error] upstream prematurely closed connection while reading response header from upstream')), lines.join('\n'));
  });

  it('answers 504 when the server never answers (fastcgi_read_timeout)', async () => {
    assert.equal((await get(served.port, '/silent')).status, 504);
    assert.ok(lines.some((line) => line.startsWith('[error] upstream timed out (110: Connection timed out) while reading response header from upstream')), lines.join('\n'));
  });

  it('answers 504 when the server takes no more of the request (fastcgi_send_timeout)', async () => {
    const answer = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: served.port, path: '/deaf', method: 'POST', agent: false, headers: { host: 'localhost', 'content-length': String(32 * 1024 * 1024) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(Buffer.alloc(32 * 1024 * 1024));
    });
    assert.equal(answer, 504);
    assert.ok(lines.some((line) => line.startsWith('[error] upstream timed out (110: Connection timed out) while sending request to upstream')), lines.join('\n'));
  });

  it('logs stderr and answers 502 when fastcgi_catch_stderr finds its string', async () => {
    assert.equal((await get(served.port, '/catch')).status, 502);
    assert.ok(lines.some((line) => line.startsWith('[error] FastCGI sent in stderr: "PHP Fatal error: boom" while reading response header from upstream')), lines.join('\n'));
  });

  it('fastcgi_intercept_errors: a 401 gets the error_page, with the server\'s WWW-Authenticate', async () => {
    const answer = await get(served.port, '/auth');
    assert.equal(answer.status, 401);
    assert.equal(answer.body, 'denied');
    assert.equal(answer.headers['www-authenticate'], 'Basic realm="php"');
  });

  it('makes Status: the status line, hides it and X-Accel-*, keeps both Set-Cookie; Location: alone is a 302', async () => {
    const teapot = await get(served.port, '/status');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.body, 'teapot');
    assert.equal(teapot.headers['status'], undefined);
    assert.equal(teapot.headers['x-accel-expires'], undefined);
    assert.deepEqual(teapot.headers['set-cookie'], ['a=1', 'b=2']);
    const moved = await get(served.port, '/location');
    assert.equal(moved.status, 302);
    assert.equal(moved.headers['location'], 'http://example.com/x');
  });
});

/** A uwsgi server: reads the packet's variables, answers with an HTTP response and closes. */
function uwsgiAnswer(socket: Socket): void {
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    if (data.length < 4) return;
    const size = data.readUInt16LE(1);
    if (data.length < 4 + size) return;
    const vars = new Map<string, string>();
    for (let at = 4; at < 4 + size; ) {
      const keyLength = data.readUInt16LE(at);
      const key = data.toString('latin1', at + 2, at + 2 + keyLength);
      at += 2 + keyLength;
      const valueLength = data.readUInt16LE(at);
      vars.set(key, data.toString('latin1', at + 2, at + 2 + valueLength));
      at += 2 + valueLength;
    }
    // Over TLS, the subject of the client certificate the proxy presented (uwsgi_ssl_certificate).
    const peer = 'getPeerCertificate' in socket ? (socket as TLSSocket).getPeerCertificate().subject?.CN ?? 'none' : 'plain';
    socket.end(`HTTP/1.1 201 Made\r\nX-Accel-Buffering: no\r\nX-Modifier: ${data[0] ?? -1}\r\nX-Client: ${peer}\r\n\r\nuri=${vars.get('REQUEST_URI') ?? ''}`);
  });
}

describe('fastcgi_limit_rate and fastcgi_ignore_client_abort, as proxy_ has them', () => {
  let upstream: Server;
  let served: Served;
  const sockets = new Set<Socket>();
  /** Per REQUEST_URI: the server's socket once the request is in, and whether hitless closed it before the answer. */
  const waiting = new Map<string, { socket: Socket; closedEarly: () => boolean; closed: Promise<void> }>();
  const arrived = new Map<string, () => void>();

  before(async () => {
    upstream = createServer((socket) => {
      sockets.add(socket);
      let answered = false;
      let closed = false;
      const gone = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('close', () => {
        closed = true;
        sockets.delete(socket);
      });
      socket.on('error', () => undefined);
      let data = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        const records = readRecords(data);
        if (answered || !records.some((r) => r.type === 5 && r.content.length === 0)) return;
        answered = true;
        const uri = params(Buffer.concat(records.filter((r) => r.type === 4).map((r) => r.content))).get('REQUEST_URI') ?? '';
        if (uri.startsWith('/rate')) {
          socket.end(Buffer.concat([record(6, 'Status: 200\r\nContent-Type: text/plain\r\n\r\n'), record(6, 'x'.repeat(3000)), END]));
          return;
        }
        // /abort...: held until the test answers it.
        waiting.set(uri, { socket, closedEarly: () => closed, closed: gone });
        arrived.get(uri)?.();
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    served = await serve(
      `http { server { listen 127.0.0.1:8080;
        fastcgi_param REQUEST_URI $request_uri;
        location /rate { fastcgi_limit_rate 1000; fastcgi_pass 127.0.0.1:${port}; }
        location /rate-var { fastcgi_limit_rate $arg_rate; fastcgi_pass 127.0.0.1:${port}; }
        location /abort-kept { fastcgi_ignore_client_abort on; fastcgi_pass 127.0.0.1:${port}; }
        location /abort { fastcgi_pass 127.0.0.1:${port}; }
        location = /next { return 200 "next"; }
      } }`,
      '/tmp/',
    );
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    upstream.close();
    await served.stop();
  });

  it('reads a response no faster than fastcgi_limit_rate (1000 bytes a second: 3000 bytes take over a second)', async () => {
    for (const path of ['/rate', '/rate-var?rate=1000']) {
      const started = Date.now();
      const reply = await get(served.port, path);
      assert.equal(reply.body.length, 3000, path);
      // nginx's allowance: the rate times the whole seconds since the start plus one.
      assert.ok(Date.now() - started >= 1000, `${path}: ${Date.now() - started} ms`);
    }
    const started = Date.now();
    assert.equal((await get(served.port, '/rate-var?rate=0')).body.length, 3000);
    assert.ok(Date.now() - started < 1000, 'rate 0: no limit');
  });

  /** `promise`, or a failure after 5 s. */
  const within = async <T>(promise: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5000)));
    try {
      return await Promise.race([promise, limit]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Sends a request to `path`, waits until the server has it, and closes the client. */
  const abandon = async (path: string): Promise<{ socket: Socket; closedEarly: () => boolean; closed: Promise<void> }> => {
    const inServer = new Promise<void>((resolve) => arrived.set(path, resolve));
    const client = createConnection(served.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    await within(inServer, `${path} to reach the server`);
    client.destroy();
    // hitless sees the close before it reads this next request: the worker takes events in order.
    assert.equal((await get(served.port, '/next')).body, 'next');
    const held = waiting.get(path);
    assert.ok(held !== undefined);
    return held;
  };

  it('closes the FastCGI connection when the client goes away, unless fastcgi_ignore_client_abort is on', async () => {
    const dropped = await abandon('/abort');
    await within(dropped.closed, 'hitless to close the connection of the abandoned request');
    const kept = await abandon('/abort-kept');
    assert.equal(kept.closedEarly(), false, 'the request to the server goes on');
    // The answer is read to its END_REQUEST, and then the connection closes as after any request.
    kept.socket.write(Buffer.concat([record(6, 'Status: 200\r\n\r\nlate'), END]));
    await within(kept.closed, 'hitless to close the connection after END_REQUEST');
  });
});

describe('uwsgi_pass: the uwsgi packet, plain and suwsgi://', () => {
  const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
  let plain: Server;
  let secure: TlsServer;
  let served: Served;

  before(async () => {
    plain = createServer(uwsgiAnswer);
    secure = createTlsServer({ cert: readFileSync(`${TLS}a-rsa.fullchain.crt`), key: readFileSync(`${TLS}a-rsa.key`), requestCert: true, rejectUnauthorized: false }, uwsgiAnswer);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    const portOf = (server: Server | TlsServer): number => {
      const address = server.address();
      return typeof address === 'object' && address !== null ? address.port : 0;
    };
    served = await serve(
      `http { server { listen 127.0.0.1:8080;
        location /plain { uwsgi_param REQUEST_URI $request_uri; uwsgi_modifier1 5; uwsgi_pass uwsgi://127.0.0.1:${portOf(plain)}; }
        location /secure { uwsgi_param REQUEST_URI $request_uri; uwsgi_ssl_verify on; uwsgi_ssl_trusted_certificate ${TLS}ca.crt; uwsgi_ssl_name a.test; uwsgi_pass suwsgi://127.0.0.1:${portOf(secure)}; }
        location /client { uwsgi_ssl_certificate ${TLS}$arg_c-rsa.crt; uwsgi_ssl_certificate_key ${TLS}$arg_c-rsa.key; uwsgi_pass suwsgi://127.0.0.1:${portOf(secure)}; }
        location /wrong-name { uwsgi_ssl_verify on; uwsgi_ssl_trusted_certificate ${TLS}ca.crt; uwsgi_ssl_name other.test; uwsgi_pass suwsgi://127.0.0.1:${portOf(secure)}; }
      } }`,
      '/tmp/',
    );
  });

  after(async () => {
    plain.close();
    secure.close();
    await served.stop();
  });

  it('sends the variables and modifier1, and passes the status line the server answers with', async () => {
    const answer = await get(served.port, '/plain?x=1');
    assert.equal(answer.status, 201);
    assert.equal(answer.body, 'uri=/plain?x=1');
    assert.equal(answer.headers['x-modifier'], '5');
    assert.equal(answer.headers['x-accel-buffering'], undefined);
  });

  it('speaks TLS for suwsgi://, verified with uwsgi_ssl_verify, and refuses a name the certificate lacks', async () => {
    const answer = await get(served.port, '/secure');
    assert.equal(answer.status, 201);
    assert.equal(answer.body, 'uri=/secure');
    assert.equal((await get(served.port, '/wrong-name')).status, 502);
  });

  it('presents the client certificate uwsgi_ssl_certificate names with variables, per request', async () => {
    assert.equal((await get(served.port, '/secure')).headers['x-client'], 'none');
    assert.equal((await get(served.port, '/client?c=a')).headers['x-client'], 'a.test');
    assert.equal((await get(served.port, '/client?c=b')).headers['x-client'], 'b.test');
    // A name no file has: ngx_http_upstream_ssl_init_connection() finalizes with 500.
    assert.equal((await get(served.port, '/client?c=none')).status, 500);
  });
});

/** An SCGI server: keeps the netstring and the body it was sent, answers with a CGI head (Status:) and closes. */
function scgiServer(seen: Buffer[]): Server {
  return createServer((socket) => {
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const colon = data.indexOf(':');
      if (colon < 0) return;
      const size = Number(data.toString('latin1', 0, colon));
      if (data.length < colon + 1 + size + 1) return;
      const fields = data.toString('latin1', colon + 1, colon + 1 + size).split('\0');
      const length = Number(fields[fields.indexOf('CONTENT_LENGTH') + 1]);
      if (data.length < colon + 1 + size + 1 + length) return;
      seen.push(data);
      socket.end(`Status: 203 Partly\r\nX-Accel-Buffering: no\r\nX-Hidden: 1\r\nX-Seen: yes\r\nX-Remote: ${socket.remoteAddress ?? ''}\r\n\r\nbody`);
    });
  });
}

describe('scgi_pass: the SCGI netstring and a CGI head', () => {
  const seen: Buffer[] = [];
  let server: Server;
  let served: Served;

  before(async () => {
    server = scgiServer(seen);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    served = await serve(
      `http { server { listen 127.0.0.1:8080;
        location / { scgi_param SCGI 1; scgi_param REQUEST_URI $request_uri; scgi_param HTTP_HOST fixed; scgi_param EMPTY $arg_none if_not_empty; scgi_hide_header X-Hidden; scgi_pass 127.0.0.1:${port}; }
        location /bind { scgi_bind 127.0.0.2; scgi_pass 127.0.0.1:${port}; }
        location /bind-var { scgi_bind $arg_b; scgi_pass 127.0.0.1:${port}; }
      } }`,
      '/tmp/',
    );
  });

  after(async () => {
    server.close();
    await served.stop();
  });

  it('sends CONTENT_LENGTH first, the parameters, the headers not set as parameters, the comma, then the body', async () => {
    seen.length = 0;
    const answer = await get(served.port, '/x?a=1', { method: 'POST', headers: { 'content-length': '5', 'x-one': 'v' }, body: 'hello' });
    assert.equal(answer.status, 203);
    assert.equal(answer.body, 'body');
    // Status, X-Accel-* and scgi_hide_header's names are not the client's (ngx_http_scgi_hide_headers).
    assert.equal(answer.headers['status'], undefined);
    assert.equal(answer.headers['x-accel-buffering'], undefined);
    assert.equal(answer.headers['x-hidden'], undefined);
    assert.equal(answer.headers['x-seen'], 'yes');
    const sent = seen[0] as Buffer;
    const text = sent.toString('latin1');
    const colon = text.indexOf(':');
    const size = Number(text.slice(0, colon));
    assert.equal(text.slice(colon + 1 + size), ',hello');
    const fields = text.slice(colon + 1, colon + 1 + size).split('\0');
    assert.equal(fields.pop(), '', 'each value ends with a NUL');
    assert.deepEqual(fields.slice(0, 6), ['CONTENT_LENGTH', '5', 'SCGI', '1', 'REQUEST_URI', '/x?a=1']);
    const names = fields.filter((_, i) => i % 2 === 0);
    // The client's Host is not sent again once scgi_param names HTTP_HOST; if_not_empty leaves EMPTY out.
    assert.deepEqual(names.filter((name) => name === 'HTTP_HOST'), ['HTTP_HOST']);
    assert.equal(fields[fields.indexOf('HTTP_HOST') + 1], 'fixed');
    assert.equal(names.includes('EMPTY'), false);
    assert.equal(fields[fields.indexOf('HTTP_X_ONE') + 1], 'v');
  });

  it('sends CONTENT_LENGTH 0 without a body', async () => {
    seen.length = 0;
    assert.equal((await get(served.port, '/')).status, 203);
    const text = (seen[0] as Buffer).toString('latin1');
    assert.match(text, /^[0-9]+:CONTENT_LENGTH\x000\x00SCGI\x001\x00/);
    assert.ok(text.endsWith('\0,'));
  });

  it('connects from the address scgi_bind names, with variables too (empty: none; not an address: an [error], none)', async () => {
    assert.equal((await get(served.port, '/bind')).headers['x-remote'], '127.0.0.2');
    assert.equal((await get(served.port, '/bind-var?b=127.0.0.3')).headers['x-remote'], '127.0.0.3');
    assert.equal((await get(served.port, '/bind-var')).headers['x-remote'], '127.0.0.1');
    const invalid = await get(served.port, '/bind-var?b=nonsense');
    assert.equal(invalid.status, 203);
    assert.equal(invalid.headers['x-remote'], '127.0.0.1');
  });

  it('refuses scgi_pass with another *_pass in one location, an address without a port, and the next_upstream cases nginx lacks', () => {
    assert.match(errorOf('http { server { location / { scgi_pass 127.0.0.1:1; proxy_pass http://127.0.0.1:2; } } }'), /^"scgi_pass" with "proxy_pass" in one location is not supported by hitless/);
    assert.equal(errorOf('http { server { location / { scgi_pass 127.0.0.1; } } }'), 'no port in upstream "127.0.0.1" in /x.conf:1');
    // ngx_http_fastcgi_next_upstream_masks, uwsgi's and scgi's: no http_502, no http_504 (proxy and grpc have them).
    for (const prefix of ['fastcgi', 'uwsgi', 'scgi']) {
      for (const value of ['http_502', 'http_504']) assert.equal(errorOf(`http { ${prefix}_next_upstream error ${value}; }`), `invalid value "${value}" in /x.conf:1`);
      assert.equal(load(`http { ${prefix}_next_upstream error timeout http_500 http_503 http_403 http_404 http_429 non_idempotent; }`).warnings.length, 0);
    }
    assert.equal(load('http { proxy_next_upstream http_502 http_504; grpc_next_upstream http_502 http_504; }').warnings.length, 0);
    // *_bind as proxy_bind parses it, the [warn] for transparent naming the directive.
    assert.equal(errorOf('http { uwsgi_bind 127.0.0.1 other; }'), 'invalid parameter "other" in /x.conf:1');
    assert.equal(errorOf('http { fastcgi_bind nonsense; }'), 'invalid address "nonsense" in /x.conf:1');
    assert.match(load('http { scgi_bind 127.0.0.1 transparent; }').warnings.map((warning) => warning.message).join('\n'), /^"transparent" of "scgi_bind" is not supported by hitless/);
    assert.equal(errorOf('http { server { location / { scgi_bind $nonexistent; scgi_pass 127.0.0.1:1; } } }'), 'unknown "nonexistent" variable');
  });
});
