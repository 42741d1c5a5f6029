/**
 * grpc_pass forwards a client's last DATA frame with its END_STREAM, as nginx does (grpc.t
 * "request - DATA flags"): node:http2 emits a frame's END_STREAM a few ticks after its bytes, and
 * a chunk written upstream at once left in a frame of its own, END_STREAM following in an empty
 * one. The gRPC server here reads raw frames, so that frame boundaries and flags are seen.
 */
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from './helpers.js';

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal field without indexing, with a new name (RFC 7541 section 6.2.2); both strings short. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

/** A gRPC server on raw frames: records the DATA frames of each stream, answers once a stream ended. */
function rawGrpcServer(seen: { length: number; flags: number }[], onHeaders: () => void): Server {
  return createServer((socket: Socket) => {
    let bytes = Buffer.alloc(0);
    let preface = false;
    socket.on('error', () => undefined);
    socket.write(frame(4, 0, 0));
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      if (!preface) {
        if (bytes.length < 24) return;
        bytes = bytes.subarray(24);
        preface = true;
      }
      while (bytes.length >= 9) {
        const length = bytes.readUIntBE(0, 3);
        if (bytes.length < 9 + length) break;
        const type = bytes[3];
        const flags = bytes[4] ?? 0;
        const stream = bytes.readUInt32BE(5) & 0x7fffffff;
        bytes = bytes.subarray(9 + length);
        if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0));
        if (type === 0) seen.push({ length, flags });
        if (type === 1 && (flags & 1) === 0) onHeaders();
        if ((type === 0 || type === 1) && (flags & 1) === 1) {
          socket.write(
            Buffer.concat([
              frame(1, 0x04, stream, Buffer.concat([Buffer.from([0x88]), literal('content-type', 'application/grpc')])),
              frame(0, 0, stream, Buffer.from('Hi')),
              frame(1, 0x05, stream, literal('grpc-status', '0')),
            ]),
          );
        }
      }
    });
  });
}

describe('grpc_pass: the request body frames', () => {
  const seen: { length: number; flags: number }[] = [];
  let upstream: Server;
  let served: Served;
  let client: ClientHttp2Session;
  let headersSeen: () => void = () => undefined;

  before(async () => {
    upstream = rawGrpcServer(seen, () => headersSeen());
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    served = await serve(`http { access_log off; server { listen 127.0.0.1:8080 http2; location / { grpc_pass 127.0.0.1:${port}; } } }`, '/tmp/');
    client = h2connect(`http://127.0.0.1:${served.port}`);
    client.on('error', () => undefined);
  });

  after(async () => {
    client?.destroy();
    await served?.stop();
    await new Promise<void>((resolve) => (upstream === undefined ? resolve() : upstream.close(() => resolve())));
  });

  it('a last DATA frame with END_STREAM goes upstream as one DATA frame with END_STREAM', async () => {
    const upstreamHeaders = new Promise<void>((resolve) => (headersSeen = resolve));
    const call = client.request({ ':method': 'POST', ':path': '/Say', 'content-type': 'application/grpc', te: 'trailers' });
    // The body after the call reached the gRPC server, as grpc.t sends it.
    await upstreamHeaders;
    call.end(Buffer.from('Hello'));
    const body = await new Promise<string>((resolve, reject) => {
      let text = '';
      call.setEncoding('latin1');
      call.on('data', (chunk: string) => (text += chunk));
      call.on('end', () => resolve(text));
      call.on('error', reject);
      call.setTimeout(5_000, () => reject(new Error('no response within 5 s')));
    });
    assert.equal(body, 'Hi');
    assert.deepEqual(seen, [{ length: 5, flags: 1 }]);
  });
});
