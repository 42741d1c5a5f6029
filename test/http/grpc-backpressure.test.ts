import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ClientHttp2Session, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from './helpers.js';
import { clientSession } from './grpc-peers.js';

const CHUNK = 64 * 1024;
const CHUNKS = 512; // 32 MiB
/** Far more than the flow-control windows and stream buffers between client and upstream hold. */
const IN_FLIGHT_BOUND = 8 * 1024 * 1024;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('grpc_pass: a client-streaming body waits for a slow gRPC server (back-pressure)', () => {
  let upstream: Http2Server;
  let upstreamPort = 0;
  const upstreamSessions = new Set<ServerHttp2Session>();
  let served: Served;
  let client: ClientHttp2Session | undefined;
  /** Called by the test to let the upstream start reading the stream it holds. */
  let startReading: () => void = () => undefined;
  let received = 0;
  let outOfOrder = -1;

  before(async () => {
    upstream = createServer();
    upstream.on('session', (session: ServerHttp2Session) => {
      upstreamSessions.add(session);
      session.on('error', () => undefined);
      session.once('close', () => upstreamSessions.delete(session));
    });
    upstream.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => undefined);
      // Nothing is read (so no WINDOW_UPDATE goes out) until the test says so.
      startReading = () => {
        stream.on('data', (chunk: Buffer) => {
          // Byte p of the body is (p / CHUNK) % 256: a lost, repeated or reordered piece shows.
          for (let i = 0; i < chunk.length; i++) {
            if (outOfOrder < 0 && chunk[i] !== Math.floor((received + i) / CHUNK) % 256) outOfOrder = received + i;
          }
          received += chunk.length;
        });
        stream.once('end', () => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end();
        });
      };
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as AddressInfo).port;
    served = await serve(
      `http { access_log off; server { listen 127.0.0.1:8080 http2; client_max_body_size 0; location / { grpc_pass 127.0.0.1:${upstreamPort}; } } }`,
      '/srv/hitless',
    );
  });

  after(async () => {
    client?.destroy();
    await served?.stop();
    for (const session of upstreamSessions) session.destroy();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('holds the client back until the upstream drains, and the upstream gets all 32 MiB in order', async () => {
    client = await clientSession(served.port);
    const stream = client.request({ ':method': 'POST', ':path': '/test.Upload/ClientStream', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    const response = once(stream, 'response');
    const trailers = once(stream, 'trailers');
    stream.resume();
    // Bytes hitless had taken from the client when the client could write no more; -1 until then.
    let takenAtStall = -1;
    let written = 0;
    for (let i = 0; i < CHUNKS; i++) {
      written += CHUNK;
      if (stream.write(Buffer.alloc(CHUNK, i % 256))) continue;
      const drained = once(stream, 'drain');
      if (takenAtStall < 0) {
        // No drain for a while: hitless stopped taking the body, as it should while the upstream reads nothing.
        const stalled = await Promise.race([drained.then(() => false), delay(300).then(() => true)]);
        if (!stalled) continue;
        takenAtStall = written - stream.writableLength;
        startReading();
      }
      await drained;
    }
    stream.end();
    if (takenAtStall < 0) takenAtStall = written; // never held back: hitless buffered it all
    assert.ok(takenAtStall < IN_FLIGHT_BOUND, `hitless took ${takenAtStall} bytes from the client while the upstream read none`);
    const [head] = (await response) as [Record<string, string>];
    assert.equal(head[':status'], 200);
    const [tail] = (await trailers) as [Record<string, string>];
    assert.equal(tail['grpc-status'], '0');
    assert.equal(received, CHUNK * CHUNKS);
    assert.equal(outOfOrder, -1, `byte ${outOfOrder} out of order`);
  });
});
