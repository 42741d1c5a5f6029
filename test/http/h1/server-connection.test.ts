import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { H1ServerConnection, type H1Exchange } from '../../../src/http/h1/server-connection.js';

/** How many writes to the socket (`_write` or `_writev` calls) each `/pieces` response took. */
const socketWrites: number[] = [];

function handler(exchange: H1Exchange): void {
  const { target } = exchange.head;
  if (target === '/echo') {
    const parts: Buffer[] = [];
    exchange.readBody(
      1024,
      (data) => parts.push(Buffer.from(data)),
      (err) => {
        if (err) {
          exchange.keepAlive = false;
          exchange.respond((err as { status?: number }).status ?? 400, [], '');
          return;
        }
        exchange.respond(200, ['Content-Type', 'text/plain'], Buffer.concat(parts));
      },
    );
    return;
  }
  if (target === '/chunked') {
    exchange.writeHead(200, [], 'chunked');
    exchange.write('hello ');
    setTimeout(() => exchange.end('world'), 5);
    return;
  }
  if (target === '/pieces') {
    // Head, two pieces and the end in one tick, as a FastCGI response whose STDOUT and END_REQUEST came in one read.
    const socket = exchange.connection.socket as Socket & { _write: (...args: unknown[]) => unknown; _writev: (...args: unknown[]) => unknown };
    const { _write: write, _writev: writev } = socket;
    let calls = 0;
    socket._write = function (this: Socket, ...args: unknown[]) {
      calls++;
      return write.apply(this, args);
    };
    socket._writev = function (this: Socket, ...args: unknown[]) {
      calls++;
      return writev.apply(this, args);
    };
    exchange.writeHead(200, [], 'chunked');
    exchange.write(Buffer.from('piece one, '));
    exchange.write(Buffer.from('piece two'));
    exchange.end();
    setImmediate(() => {
      socket._write = write;
      socket._writev = writev;
      socketWrites.push(calls);
    });
    return;
  }
  if (target === '/slow') {
    setTimeout(() => exchange.respond(200, [], 'slow'), 150);
    return;
  }
  exchange.respond(200, ['X-Request', String(exchange.connection.requests)], `path=${target}`);
}

/** Sends raw bytes and collects everything until the server closes or `ms` passes. */
function raw(port: number, data: string | string[], ms = 400): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const parts = Array.isArray(data) ? data : [data];
    socket.on('connect', () => {
      parts.forEach((part, i) => setTimeout(() => socket.writable && socket.write(part), i * 30));
    });
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      resolve({ text, closed });
    });
    setTimeout(() => {
      socket.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

describe('H1ServerConnection', () => {
  let server: Server;
  let port = 0;
  const connections: H1ServerConnection[] = [];

  before(async () => {
    server = createServer((socket) => connections.push(new H1ServerConnection(socket, handler, { keepaliveRequests: 3, lingeringTimeoutMs: 200 })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    for (const c of connections) c.destroy();
    server.close();
  });

  it('serves node:http clients with keep-alive', async () => {
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        request({ port, host: '127.0.0.1', path, agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        }).on('error', reject).end();
      });
    const first = await get('/a');
    const second = await get('/b');
    assert.equal(first.body, 'path=/a');
    assert.equal(second.headers['x-request'], '2');
    assert.equal(second.headers.connection, 'keep-alive');
    assert.equal((await get('/chunked')).body, 'hello world');
    agent.destroy();
  });

  it('sends a chunked head, the pieces of one tick and the last chunk in one write', async () => {
    socketWrites.length = 0;
    const { text } = await raw(port, 'GET /pieces HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nb\r\npiece one, \r\n9\r\npiece two\r\n0\r\n\r\n$/);
    assert.deepEqual(socketWrites, [1]);
  });

  it('answers pipelined requests in order', async () => {
    const { text } = await raw(port, 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.ok(text.indexOf('path=/1') < text.indexOf('path=/2') && text.includes('path=/2'), text);
  });

  it('closes after keepalive_requests, saying so', async () => {
    const req = 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n';
    const { text, closed } = await raw(port, [req, req, req, req], 800);
    assert.equal(text.match(/HTTP\/1\.1 200/g)?.length, 3);
    assert.match(text, /X-Request: 3\r\n[^]*Connection: close\r\n/);
    assert.equal(closed, true);
  });

  it('closes an HTTP/1.0 connection unless asked to keep it', async () => {
    const { text, closed } = await raw(port, 'GET /x HTTP/1.0\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n/);
    assert.equal(closed, true);
  });

  it('reads a body by Content-Length and by chunks, and discards one the handler ignores', async () => {
    const { text } = await raw(port, [
      'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel',
      'lo',
      'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'POST /ignored HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nzzzz',
    ]);
    assert.match(text, /Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello/);
    assert.match(text, /Content-Length: 3\r\nConnection: keep-alive\r\n\r\nabc/);
    assert.match(text, /\r\n\r\npath=\/ignored/);
    assert.doesNotMatch(text, /400 Bad Request/);
  });

  it('answers 413 to a body over the limit', async () => {
    const { text } = await raw(port, `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 413 Request Entity Too Large/);
  });

  for (const [name, request] of [
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd'],
    ['a folded header', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n'],
  ] as const) {
    it(`refuses ${name} with 400 and closes, forwarding nothing`, async () => {
      const { text, closed } = await raw(port, request);
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(text, /Connection: close/);
      assert.equal(text.match(/HTTP\/1\.1/g)?.length, 1);
      assert.equal(closed, true);
    });
  }

  it('answers the next request of a draining connection with Connection: close', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    // Drain while /slow is in flight (it answers 150 ms after the server read it), however slow
    // the machine: wait until the server has the request, a bounded number of times.
    for (let i = 0; i < 100 && (connections.at(-1)?.requests ?? 0) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    connections.at(-1)?.drain(1000);
    await closed;
    assert.match(text, /Connection: close\r\n\r\nslow$/);
  });

  it('closes an idle draining connection after the grace period, not before', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    const conn = connections.at(-1);
    let closed = false;
    socket.on('close', () => (closed = true));
    conn?.drain(300);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(closed, false);
    // A request within the grace period is still answered, with Connection: close.
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.write('GET /b HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    assert.match(text, /Connection: close\r\n\r\npath=\/b$/);
  });
});
