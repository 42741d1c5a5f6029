/**
 * The frame scanner behind `$request_length` over HTTP/2 (src/http/h2/frame-counter.ts): the header
 * block fragment bytes of each new stream, as nginx counts them, whatever the reads cut.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameCounter } from '../../src/http/h2/frame-counter.js';

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

const block = Buffer.from('0123456789abcdefgh', 'latin1');
// PADDED | PRIORITY without END_HEADERS: pad length 4, 5 priority bytes, 7 bytes of the block, padding; the rest in CONTINUATION.
const padded = frame(0x1, 0x08 | 0x20, 1, Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 15]), block.subarray(0, 7), Buffer.alloc(4)]));
const continuation = frame(0x9, 0x04, 1, block.subarray(7));
const body = frame(0x0, 0x01, 1, Buffer.from('TEST'));

describe('FrameCounter', () => {
  it('counts HEADERS and CONTINUATION fragments without pad length, padding or priority', () => {
    const counter = new FrameCounter();
    counter.scan(Buffer.concat([frame(0x4, 0, 0, Buffer.alloc(0)), padded, continuation, body]));
    assert.equal(counter.take(1), block.length);
    assert.equal(counter.take(1), undefined);
  });

  it('gives the same count when the bytes come one at a time', () => {
    const counter = new FrameCounter();
    const bytes = Buffer.concat([padded, continuation, body, frame(0x1, 0x05, 3, block)]);
    for (let at = 0; at < bytes.length; at++) counter.scan(bytes.subarray(at, at + 1));
    assert.equal(counter.take(1), block.length);
    assert.equal(counter.take(3), block.length);
  });

  it('does not count trailers (a HEADERS frame on a stream already opened)', () => {
    const counter = new FrameCounter();
    counter.scan(Buffer.concat([frame(0x1, 0x04, 1, block), frame(0x1, 0x05, 1, Buffer.from('xy'))]));
    assert.equal(counter.take(1), block.length);
  });

  it('forgets the streams older than the one taken (never handed over)', () => {
    const counter = new FrameCounter();
    counter.scan(Buffer.concat([frame(0x1, 0x05, 1, block), frame(0x1, 0x05, 3, block), frame(0x1, 0x05, 5, block)]));
    assert.equal(counter.take(3), block.length);
    assert.equal(counter.take(1), undefined);
    assert.equal(counter.take(5), block.length);
  });
});
