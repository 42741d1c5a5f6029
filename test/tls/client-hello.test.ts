/**
 * clientHelloIncomplete(): a handshake waits for the whole ClientHello before it starts, so that a
 * ClientHello over two TCP segments (a large key share) is read whole, for the staple of the
 * certificate it gets and $ssl_ciphers; anything else is taken as it comes.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { clientHelloIncomplete, parseClientHello } from '../../src/tls/client-hello.js';

/** The ClientHello Node's client sends, as the server reads it (at most 10 s). */
function realClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ClientHello within 10 s')), 10_000);
    const chunks: Buffer[] = [];
    const server = createServer((raw) => {
      raw.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const bytes = Buffer.concat(chunks);
        if (parseClientHello(bytes) === undefined) return;
        clearTimeout(timer);
        raw.destroy();
        server.close();
        resolve(bytes);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return;
      connect({ port: address.port, host: '127.0.0.1', servername: 'localhost' }).on('error', () => undefined);
    });
  });
}

/** `hello` (one record) split into records of at most `size` bytes of the message. */
function inRecords(hello: Buffer, size: number): Buffer {
  const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let pos = 0; pos < message.length; pos += size) {
    const fragment = message.subarray(pos, pos + size);
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    header.writeUInt16BE(fragment.length, 3);
    records.push(header, fragment);
  }
  return Buffer.concat(records);
}

describe('clientHelloIncomplete', () => {
  it('waits for every byte of a ClientHello, in one record or several', async () => {
    const hello = await realClientHello();
    for (const bytes of [hello, inRecords(hello, 100), inRecords(hello, 4)]) {
      for (let end = 1; end < bytes.length; end++) assert.equal(clientHelloIncomplete(bytes.subarray(0, end)), true, `${end} of ${bytes.length} bytes`);
      assert.equal(clientHelloIncomplete(bytes), false);
      assert.ok(parseClientHello(bytes));
      // What follows the ClientHello (a client's early records) does not make it wait.
      assert.equal(clientHelloIncomplete(Buffer.concat([bytes, Buffer.from([0x14, 0x03, 0x03])])), false);
    }
  });

  it('takes anything else as it comes: plain HTTP, SSLv2, another handshake message, an alert', () => {
    for (const bytes of ['GET / HTTP/1.1\r\n', '\x80\x2e\x01\x03\x01', '\x16\x03\x01\x00\x10\x02\x00', '\x15\x03\x01\x00\x02\x02']) {
      assert.equal(clientHelloIncomplete(Buffer.from(bytes, 'latin1')), false, JSON.stringify(bytes));
    }
    assert.equal(clientHelloIncomplete(Buffer.alloc(0)), false);
  });

  it('stops waiting at 64 KiB', () => {
    // A ClientHello that says it is 16 MiB long, in full records of 16 KiB.
    const record = (i: number): Buffer => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), i === 0 ? Buffer.from([0x01, 0xff, 0xff, 0xff]) : Buffer.alloc(0), Buffer.alloc(i === 0 ? 16_380 : 16_384)]);
    assert.equal(clientHelloIncomplete(Buffer.concat([0, 1, 2].map(record))), true);
    assert.equal(clientHelloIncomplete(Buffer.concat([0, 1, 2, 3].map(record))), false);
  });
});
