/**
 * A response the upstream cuts short never looks whole to the client (issue 15). Over HTTP/2 the
 * stream is reset with RST_STREAM(INTERNAL_ERROR) and no END_STREAM, as nginx's
 * ngx_http_v2_close_stream() does; hitless used to send an empty DATA frame with END_STREAM first
 * (Node's Http2Stream.close()), so curl took a truncated chunked body as complete. Over HTTP/1.1
 * the connection closes before the last chunk or before Content-Length bytes. gRPC (grpc_pass)
 * goes the same way when the upstream resets its stream mid-response.
 */
import assert from 'node:assert/strict';
import http2, { constants } from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, startMaster, TestPrefix, type MasterUnderTest } from './helpers/masters.js';

/** An upstream that answers a head promising more than it sends, then closes. */
function cuttingUpstream(): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (data) => {
      const chunked = data.toString('latin1').includes('/chunked');
      const head = chunked ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n';
      socket.end(`${head}${'a'.repeat(1000)}${chunked ? '\r\n' : ''}`);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

/** An HTTP/2 upstream (h2c) that sends a head and one DATA frame, then resets the stream. */
function resettingGrpcUpstream(): Promise<{ server: http2.Http2Server; port: number }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    // destroy(err), not close(code), which would send END_STREAM first (the quirk under test).
    stream.write(Buffer.alloc(1000, 1), () => stream.destroy(new Error('reset by the test upstream')));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

/** What an HTTP/2 client saw of one stream: bytes, whether it ended (END_STREAM), its reset code. */
function h2Get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ bytes: number; ended: boolean; rstCode: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':path': path, ...headers, ...(headers['content-type'] === undefined ? {} : { ':method': 'POST' }) });
    if (headers['content-type'] !== undefined) stream.end(Buffer.from([0, 0, 0, 0, 0]));
    let bytes = 0;
    let ended = false;
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => (ended = true));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      session.close();
      resolve({ bytes, ended, rstCode: stream.rstCode ?? -1 });
    });
    stream.setTimeout(10_000, () => reject(new Error(`no end of ${path} within 10 s`)));
  });
}

/** What an HTTP/1.1 client read before the connection closed. */
function h1Get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no close within 10 s')));
  });
}

describe('a response the upstream cuts short', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let upstream: { server: Server; port: number } | undefined;
  let grpc: { server: http2.Http2Server; port: number } | undefined;
  let h1 = 0;
  let h2 = 0;

  before(async () => {
    upstream = await cuttingUpstream();
    grpc = await resettingGrpcUpstream();
    h1 = await freePort();
    h2 = await freePort();
    master = await startMaster({
      prefix,
      port: h1,
      program: 'hitless',
      conf: `worker_processes 1;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${h1};
        listen 127.0.0.1:${h2} http2;
        location = / { return 200 "up\\n"; }
        location / { proxy_pass http://127.0.0.1:${upstream.port}; }
        location /grpc { grpc_pass grpc://127.0.0.1:${grpc.port}; }
    }
}
`,
    });
  });
  after(async () => {
    await master?.stop();
    upstream?.server.close();
    grpc?.server.close();
    prefix.remove();
  });

  for (const path of ['/content-length', '/chunked']) {
    it(`HTTP/2, ${path}: RST_STREAM(INTERNAL_ERROR) after the bytes it had, never END_STREAM`, async () => {
      const seen = await h2Get(h2, path);
      assert.deepEqual(seen, { bytes: 1000, ended: false, rstCode: constants.NGHTTP2_INTERNAL_ERROR });
    });
  }

  it('HTTP/1.1, Content-Length: the connection closes before the length promised', async () => {
    const text = await h1Get(h1, '/content-length');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nContent-Length: 100000\r\n/i);
    assert.equal(text.length - text.indexOf('\r\n\r\n') - 4, 1000);
  });

  it('HTTP/1.1, chunked: the connection closes without the last chunk', async () => {
    const text = await h1Get(h1, '/chunked');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.ok(!text.endsWith('0\r\n\r\n'), 'the terminating chunk was sent');
  });

  it('gRPC: an upstream stream reset mid-response resets the client stream, never END_STREAM', async () => {
    const seen = await h2Get(h2, '/grpc.Test/Call', { 'content-type': 'application/grpc', te: 'trailers' });
    assert.equal(seen.ended, false);
    assert.equal(seen.rstCode, constants.NGHTTP2_INTERNAL_ERROR);
  });
});
