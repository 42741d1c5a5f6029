import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { UpstreamExchange, type UpstreamFailure } from '../../../src/http/h1/upstream-exchange.js';
import type { ResponseHead } from '../../../src/http/h1/head-parser.js';
import { ConnectionPool, UpstreamConnection } from '../../../src/upstream/connection-pool.js';

/** An upstream that answers each request with the raw bytes its path names. */
const RESPONSES: Record<string, string[]> = {
  '/length': ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel', 'lo'],
  '/chunked': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', '0\r\n\r\n'],
  '/interim': ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'],
  '/until-close': ['HTTP/1.0 200 OK\r\n\r\nall of it', 'CLOSE'],
  '/empty': ['HTTP/1.1 204 No Content\r\n\r\n'],
  '/garbage': ['SMTP ready\r\n\r\n'],
  '/hangup': ['CLOSE'],
  '/close-header': ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx'],
  '/silent': [],
};

function startUpstream(): Promise<{ server: Server; port: number; stop: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(buf.indexOf(' ') + 1, buf.indexOf(' ', buf.indexOf(' ') + 1));
        buf = buf.slice(end + 4);
        const parts = RESPONSES[path] ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'];
        parts.forEach((part, i) =>
          setTimeout(() => {
            if (part === 'CLOSE') socket.end();
            else if (socket.writable) socket.write(part);
          }, i * 10),
        );
      }
    });
    socket.on('error', () => undefined);
  });
  const stop = (): void => {
    for (const socket of sockets) socket.destroy();
    server.close();
  };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, stop })));
}

interface Outcome {
  head?: ResponseHead;
  body: string;
  reusable?: boolean;
  failure?: UpstreamFailure;
}

function exchange(connection: UpstreamConnection, path: string, method = 'GET', readTimeoutMs = 2000): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { body: '' };
    const ex = new UpstreamExchange(connection, method, {
      onHead: (head) => (outcome.head = head),
      onData: (chunk) => (outcome.body += chunk.toString('latin1')),
      onEnd: (reusable) => resolve({ ...outcome, reusable }),
      onError: (failure) => resolve({ ...outcome, failure }),
    }, { sendTimeoutMs: 2000, readTimeoutMs });
    ex.send(`${method} ${path} HTTP/1.1\r\nHost: up\r\n\r\n`, undefined);
  });
}

async function open(port: number): Promise<UpstreamConnection> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  return new UpstreamConnection(socket, `127.0.0.1:${port}`);
}

describe('UpstreamExchange and ConnectionPool', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  before(async () => (upstream = await startUpstream()));
  after(() => upstream.stop());

  it('reads Content-Length and chunked bodies to their end and keeps the connection', async () => {
    const connection = await open(upstream.port);
    const length = await exchange(connection, '/length');
    assert.equal(length.body, 'hello');
    assert.equal(length.reusable, true);
    const chunked = await exchange(connection, '/chunked');
    assert.equal(chunked.body, '3\r\nabc\r\n0\r\n\r\n', 'chunked framing passes through untouched');
    assert.equal(chunked.reusable, true);
    assert.equal(connection.requests, 2);
    connection.socket.destroy();
  });

  it('skips 100 Continue and reads the final response', async () => {
    const connection = await open(upstream.port);
    const result = await exchange(connection, '/interim');
    assert.equal(result.head?.status, 201);
    assert.equal(result.body, 'ok');
    connection.socket.destroy();
  });

  it('reads a body delimited by close, and does not reuse that connection', async () => {
    const connection = await open(upstream.port);
    const result = await exchange(connection, '/until-close');
    assert.equal(result.body, 'all of it');
    assert.equal(result.reusable, false);
  });

  it('knows that 204 and HEAD responses have no body', async () => {
    const connection = await open(upstream.port);
    assert.equal((await exchange(connection, '/empty')).reusable, true);
    const head = await exchange(connection, '/length', 'HEAD');
    assert.equal(head.body, '');
    connection.socket.destroy();
  });

  it('does not reuse a connection the upstream asked to close', async () => {
    const connection = await open(upstream.port);
    assert.equal((await exchange(connection, '/close-header')).reusable, false);
    connection.socket.destroy();
  });

  it('reports an invalid header, a hang-up before the response, and a timeout as nginx names them', async () => {
    const garbage = await exchange(await open(upstream.port), '/garbage');
    assert.equal(garbage.failure?.kind, 'invalid_header');
    assert.match(garbage.failure?.message ?? '', /upstream sent no valid HTTP\/1\.0 header while reading response header from upstream/);
    const hangup = await exchange(await open(upstream.port), '/hangup');
    assert.equal(hangup.failure?.kind, 'error');
    assert.equal(hangup.failure?.beforeResponse, true);
    assert.match(hangup.failure?.message ?? '', /upstream prematurely closed connection while reading response header from upstream/);
    const silent = await exchange(await open(upstream.port), '/silent', 'GET', 100);
    assert.equal(silent.failure?.kind, 'timeout');
  });

  it('pools idle connections per peer and drops one the upstream closes', async () => {
    const pool = new ConnectionPool({ maxIdle: 2, maxRequests: 100, maxAgeMs: 60_000, idleTimeoutMs: 60_000 });
    const peer = `127.0.0.1:${upstream.port}`;
    const first = await open(upstream.port);
    await exchange(first, '/length');
    pool.release(first, true);
    assert.equal(pool.size, 1);
    assert.equal(pool.acquire('elsewhere:1'), undefined);
    const again = pool.acquire(peer);
    assert.equal(again, first);
    assert.equal((await exchange(first, '/close-header')).reusable, false);
    first.socket.destroy();
    // Reused and then closed by the upstream while idle: the pool lets it go.
    const second = await open(upstream.port);
    await exchange(second, '/length');
    pool.release(second, true);
    second.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pool.size, 0);
    pool.close();
  });

  it('honours keepalive_requests and the idle limit', async () => {
    const pool = new ConnectionPool({ maxIdle: 1, maxRequests: 1, maxAgeMs: 60_000, idleTimeoutMs: 60_000 });
    const connection = await open(upstream.port);
    await exchange(connection, '/length');
    pool.release(connection, true);
    assert.equal(pool.size, 0);
    assert.equal(connection.socket.destroyed, true);
    const timed = new ConnectionPool({ maxIdle: 4, maxRequests: 100, maxAgeMs: 60_000, idleTimeoutMs: 30 });
    const idle = await open(upstream.port);
    await exchange(idle, '/length');
    timed.release(idle, true);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(timed.size, 0);
  });
});
