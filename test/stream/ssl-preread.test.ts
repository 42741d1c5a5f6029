/**
 * ssl_preread: the ClientHello reader on its own (whole, byte by byte, over several TLS records,
 * truncated, not TLS), and SNI and ALPN routing through a stream server to TLS backends that the
 * client verifies end to end.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as connectTcp, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { ClientHelloReader } from '../../src/stream/ssl-preread.js';
import { echoBackend, exchange, namedBackend, serveStream, type Backend, type ServedStream } from './helpers.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url);
const pem = (name: string): Buffer => readFileSync(new URL(name, fixtures));

/** The ClientHello node:tls sends for these options, captured by a plain TCP server. */
async function captureClientHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const hello = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all);
          socket.destroy();
        }
      });
    });
  });
  const client = connectTls({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
  client.on('error', () => undefined);
  const bytes = await hello;
  client.destroy();
  await new Promise((resolve) => server.close(resolve));
  return bytes;
}

/** The same handshake message framed as several TLS records of at most `size` bytes of it each. */
function reframe(hello: Buffer, size: number): Buffer {
  const message = hello.subarray(5);
  const records: Buffer[] = [];
  for (let at = 0; at < message.length; at += size) {
    const part = message.subarray(at, at + size);
    records.push(Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part);
  }
  return Buffer.concat(records);
}

describe('the ClientHello reader', () => {
  let hello: Buffer;
  before(async () => {
    hello = await captureClientHello({ servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] });
  });

  it('reads SNI, ALPN and the version of a whole ClientHello', () => {
    const reader = new ClientHelloReader();
    assert.equal(reader.feed(hello), 'ok');
    assert.deepEqual(reader.values, { serverName: 'a.test', alpnProtocols: 'h2,http/1.1', protocol: 'TLSv1.3' });
  });

  it('reads the same from the bytes given one at a time', () => {
    const reader = new ClientHelloReader();
    let result = 'again';
    for (let i = 0; i < hello.length; i++) {
      result = reader.feed(hello.subarray(i, i + 1));
      if (i < hello.length - 1) assert.equal(result, 'again', `done early at byte ${i}`);
    }
    assert.equal(result, 'ok');
    assert.equal(reader.values?.serverName, 'a.test');
  });

  it('reads a ClientHello spread over several TLS records, and over segments within them', () => {
    for (const size of [1, 7, 100]) {
      const framed = reframe(hello, size);
      const reader = new ClientHelloReader();
      for (let at = 0; at < framed.length; at += 3) reader.feed(framed.subarray(at, at + 3));
      assert.equal(reader.result, 'ok', `records of ${size}`);
      assert.deepEqual(reader.values, { serverName: 'a.test', alpnProtocols: 'h2,http/1.1', protocol: 'TLSv1.3' });
    }
  });

  it('waits on a truncated ClientHello and declines what is not TLS', () => {
    const truncated = new ClientHelloReader();
    assert.equal(truncated.feed(hello.subarray(0, 60)), 'again');
    for (const text of ['GET / HTTP/1.1\r\nHost: a.test\r\n\r\n', 'garbage!', '\x16\x02\x00\x00\x05hello']) {
      const reader = new ClientHelloReader();
      assert.equal(reader.feed(Buffer.from(text, 'latin1')), 'declined', JSON.stringify(text));
      assert.equal(reader.values, undefined);
    }
    // A handshake record that is not a ClientHello (a ServerHello, type 2).
    const serverHello = Buffer.from(hello);
    serverHello[5] = 2;
    assert.equal(new ClientHelloReader().feed(serverHello), 'declined');
  });

  it('knows an SSLv2-compatible ClientHello by its version only', () => {
    const reader = new ClientHelloReader();
    assert.equal(reader.feed(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00])), 'ok');
    assert.deepEqual(reader.values, { serverName: '', alpnProtocols: '', protocol: 'TLSv1' });
  });

  it('reports an empty name for a ClientHello without SNI', async () => {
    const reader = new ClientHelloReader();
    reader.feed(await captureClientHello({}));
    assert.equal(reader.result, 'ok');
    assert.equal(reader.values?.serverName, '');
  });
});

/** A TLS backend with its own certificate that answers `name` and closes. */
async function tlsBackend(name: string, cert: string, key: string): Promise<{ server: TlsServer; port: number }> {
  const server = createTlsServer({ cert: pem(cert), key: pem(key), ALPNProtocols: ['h2', 'http/1.1'] }, (socket) => {
    socket.on('error', () => undefined);
    socket.end(`${name} ${socket.alpnProtocol || 'none'}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** A TLS client verifying the backend's own certificate against the test CA; resolves what it reads. */
function tlsGet(port: number, servername: string, alpn?: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername, ca: pem('ca.crt'), ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('routing by ssl_preread through a stream server', () => {
  let a: { server: TlsServer; port: number };
  let b: { server: TlsServer; port: number };
  let plain: Backend;
  let named: Backend;
  let served: ServedStream;

  before(async () => {
    a = await tlsBackend('a', 'a-rsa.fullchain.crt', 'a-rsa.key');
    b = await tlsBackend('b', 'b-rsa.fullchain.crt', 'b-rsa.key');
    plain = await echoBackend();
    named = await namedBackend('named');
    served = await serveStream(`stream { proxy_half_close on;
      map $ssl_preread_server_name $by_name {
        a.test 127.0.0.1:${a.port};
        b.test 127.0.0.1:${b.port};
        default 127.0.0.1:${plain.port};
      }
      map $ssl_preread_alpn_protocols $by_alpn {
        ~\\bh2\\b 127.0.0.1:${b.port};
        default 127.0.0.1:${a.port};
      }
      map $ssl_preread_server_name $known_only {
        a.test 127.0.0.1:${named.port};
      }
      server { listen 127.0.0.1:1; ssl_preread on; proxy_pass $by_name; }
      server { listen 127.0.0.1:2; ssl_preread on; proxy_pass $by_alpn; }
      server { listen 127.0.0.1:3; ssl_preread on; proxy_pass $known_only; }
      server { listen 127.0.0.1:4; ssl_preread on; preread_buffer_size 64; proxy_pass $by_name; }
      server { listen 127.0.0.1:5; ssl_preread on; preread_timeout 200ms; proxy_pass $by_name; }
    }`);
  });
  after(async () => {
    await served.stop();
    for (const backend of [a, b]) await new Promise((resolve) => backend.server.close(resolve));
    await plain.stop();
    await named.stop();
  });

  it('passes TLS through to the backend the SNI names, whose own certificate the client verifies', async () => {
    assert.equal(await tlsGet(served.ports[0] ?? 0, 'a.test'), 'a none');
    assert.equal(await tlsGet(served.ports[0] ?? 0, 'b.test'), 'b none');
  });

  it('routes by the ALPN protocols offered', async () => {
    // A client offering h2 goes to b; b.test's certificate is checked against the name asked for.
    assert.equal(await tlsGet(served.ports[1] ?? 0, 'b.test', ['h2', 'http/1.1']), 'b h2');
    assert.equal(await tlsGet(served.ports[1] ?? 0, 'a.test', ['http/1.1']), 'a http/1.1');
  });

  it('routes a ClientHello sent one byte at a time, and passes its bytes on untouched', async () => {
    const hello = await captureClientHello({ servername: 'a.test' });
    const socket = connectTcp({ port: served.ports[2] ?? 0, host: '127.0.0.1' });
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once('connect', resolve));
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('close', () => resolve(text));
    });
    const before = named.firstBytes.length;
    for (let i = 0; i < hello.length; i++) {
      socket.write(hello.subarray(i, i + 1));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.equal(await answer, 'named');
    const received = named.firstBytes[before];
    assert.ok(received !== undefined && hello.subarray(0, received.length).equals(received) && received.length > 0);
  });

  it('routes garbage and plain HTTP by the empty name, bytes untouched', async () => {
    assert.equal((await exchange(served.ports[0] ?? 0, 'GET / HTTP/1.0\r\n\r\n')).toString(), 'GET / HTTP/1.0\r\n\r\n');
    const garbage = Buffer.from([0x00, 0xff, 0x16, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
    assert.ok((await exchange(served.ports[0] ?? 0, garbage)).equals(garbage));
  });

  it('closes a session whose name maps to nothing', async () => {
    assert.equal((await exchange(served.ports[2] ?? 0, 'not tls at all')).length, 0);
  });

  it('closes a ClientHello larger than preread_buffer_size without passing it on', async () => {
    const hello = await captureClientHello({ servername: 'a.test' });
    const before = plain.accepted;
    assert.equal((await exchange(served.ports[3] ?? 0, hello, { halfClose: false })).length, 0);
    assert.equal(plain.accepted, before);
  });

  it('goes on after preread_timeout with what it has: a truncated ClientHello routes by the empty name', async () => {
    const hello = await captureClientHello({ servername: 'a.test' });
    // Half a ClientHello, then silence: the echo backend (the default) gets it after the timeout.
    const half = hello.subarray(0, 40);
    const socket = connectTcp({ port: served.ports[4] ?? 0, host: '127.0.0.1' });
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      socket.on('connect', () => socket.write(half));
      socket.once('data', resolve);
      socket.on('error', reject);
      setTimeout(() => reject(new Error('no echo')), 5_000);
    });
    socket.destroy();
    assert.ok(echoed.equals(half));
  });
});
