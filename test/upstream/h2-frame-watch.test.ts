/**
 * The frame watch under upstream HTTP/2 sessions (src/upstream/h2-frame-watch.ts): frames cut
 * anywhere by the reads, a byte at a time, are walked as whole frames, every byte reaches the
 * reader in order, and a late frame of a watched stream is reported once, in nginx's words.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { H2FrameWatch } from '../../src/upstream/h2-frame-watch.js';

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

describe('H2FrameWatch', () => {
  let server: Server;
  let peer: Promise<Socket>;

  before(async () => {
    let accepted: (socket: Socket) => void = () => undefined;
    peer = new Promise((resolve) => (accepted = resolve));
    server = createServer((socket) => accepted(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('walks frames cut a byte at a time and passes every byte on, a late RST_STREAM reported once', async () => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.setNoDelay(true);
    const watch = new H2FrameWatch(socket);
    const late: string[] = [];
    watch.watch(3, (message) => late.push(message));
    watch.watch(5, (message) => late.push(message));
    const code = Buffer.alloc(4);
    code.writeUInt32BE(2);
    const bytes = Buffer.concat([
      frame(4, 0, 0, Buffer.alloc(6)),
      // Stream 3: HEADERS with END_STREAM continued, then a RST_STREAM that is no longer late-free.
      frame(1, 0x01, 3, Buffer.from([0x88])),
      frame(9, 0x04, 3, Buffer.from([0x40, 0x01, 0x61, 0x01, 0x62])),
      frame(8, 0, 3, Buffer.from([0, 0, 0, 1])),
      frame(3, 0, 3, code),
      frame(3, 0, 3, code),
      // Stream 5: a padded DATA without END_STREAM, then a RST_STREAM: nghttp2's to report, not the watch's.
      frame(0, 0x08, 5, Buffer.from([2, 0x61, 0, 0])),
      frame(3, 0, 5, code),
    ]);
    const received: Buffer[] = [];
    watch.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = new Promise<void>((resolve) => watch.once('end', resolve));
    const remote = await peer;
    for (const byte of bytes) {
      remote.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    remote.end();
    await ended;
    assert.deepEqual(Buffer.concat(received), bytes);
    assert.deepEqual(late, ['upstream rejected request with error 2']);
    watch.destroy();
  });
});
