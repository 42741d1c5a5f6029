import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { errorOf, load, RawClient, recordingLog, serve, type Served } from './helpers.js';
import { h2connect, h2request } from './h2-client.js';

/** An HTTP/2 frame as it came off the wire. */
interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** A raw client socket's frames (after whatever `skip` bytes), read as they arrive. */
class FrameReader {
  #buf = Buffer.alloc(0);
  readonly #waiters: (() => void)[] = [];
  closed = false;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Frames until one matches `until`; rejects if the connection closes first. */
  async until(until: (frame: Frame) => boolean): Promise<Frame[]> {
    const frames: Frame[] = [];
    for (;;) {
      while (this.#buf.length >= 9 && this.#buf.length >= 9 + this.#buf.readUIntBE(0, 3)) {
        const length = this.#buf.readUIntBE(0, 3);
        const frame = { type: this.#buf[3] as number, flags: this.#buf[4] as number, stream: this.#buf.readUInt32BE(5) & 0x7fffffff, payload: this.#buf.subarray(9, 9 + length) };
        this.#buf = this.#buf.subarray(9 + length);
        frames.push(frame);
        if (until(frame)) return frames;
      }
      if (this.closed) throw new Error(`closed after frames ${JSON.stringify(frames.map((f) => [f.type, f.flags, f.stream]))}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const SETTINGS_ACK = Buffer.from([0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]);

/** HEADERS (END_STREAM, END_HEADERS) on stream 1 for GET / at localhost: HPACK static indices and one literal. */
function getHeadersFrame(): Buffer {
  const block = Buffer.concat([Buffer.from([0x82, 0x86, 0x84, 0x41, 9]), Buffer.from('localhost')]);
  const head = Buffer.from([0, 0, block.length, 0x1, 0x5, 0, 0, 0, 1]);
  return Buffer.concat([head, block]);
}

describe('max_headers, and HTTP/2 clients that wait for the server before their SETTINGS', () => {
  let served: Served;
  const sessions: ClientHttp2Session[] = [];
  const sockets: Socket[] = [];
  const lines: string[] = [];

  before(async () => {
    const log = recordingLog(lines);
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:8080 http2;
          max_headers 5;
          location / { return 200 "ok"; }
        }
        server {
          listen 127.0.0.1:8081 http2;
          location / { return 200 "ok"; }
        }
        server {
          listen 127.0.0.1:8443 ssl http2;
          ssl_certificate ${TLS}a-rsa.fullchain.crt;
          ssl_certificate_key ${TLS}a-rsa.key;
          location / { return 200 "ok"; }
        }
      }`,
      '/srv/hitless',
      log,
    );
  });

  after(async () => {
    for (const s of sessions) s.destroy();
    for (const s of sockets) s.destroy();
    await served?.stop();
  });

  const port = (key: string): number => served.ports.get(key) ?? 0;

  it('parses max_headers in http and server, default 1000, in nginx\'s words', () => {
    assert.equal(load('http { }').main.child('http')?.get('max_headers'), 1000);
    assert.equal(load('http { max_headers 12; }').main.child('http')?.get('max_headers'), 12);
    assert.match(errorOf('http { max_headers many; }'), /"max_headers" directive invalid number/);
    assert.match(errorOf('http { server { location / { max_headers 4; } } }'), /"max_headers" directive is not allowed here/);
  });

  it('HTTP/1: five header lines pass, the sixth gets 400 "Request Header Or Cookie Too Large" and the info line', async () => {
    const extra = (n: number): string => Array.from({ length: n }, (_, i) => `X-Blah: ${i}\r\n`).join('');
    const ok = await RawClient.connect(port('127.0.0.1:8080'));
    const passed = await ok.get('/', 'localhost', extra(4));
    ok.destroy();
    assert.equal(passed.status, 200);
    const refused = await RawClient.connect(port('127.0.0.1:8080'));
    const answer = await refused.get('/', 'localhost', extra(5));
    await refused.untilEnded();
    refused.destroy();
    assert.equal(answer.status, 400);
    assert.match(answer.body, /<center>Request Header Or Cookie Too Large<\/center>/);
    assert.ok(lines.some((line) => line.startsWith('[info] client sent too many header lines')), lines.join('\n'));
  });

  it('HTTP/2: five fields pass, the sixth gets 400; pseudo-headers and cookie crumbs do not count', async () => {
    const s = await h2connect(port('127.0.0.1:8080'));
    sessions.push(s);
    const blah = (n: number): Record<string, string[]> => ({ 'x-blah': Array.from({ length: n }, (_, i) => String(i)) });
    assert.equal((await h2request(s, '/', { headers: blah(5) })).status, 200);
    const refused = await h2request(s, '/', { headers: blah(6) });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /Request Header Or Cookie Too Large/);
    assert.equal((await h2request(s, '/', { headers: { ...blah(5), cookie: ['a=1', 'b=2', 'c=3', 'd=4'] } })).status, 200);
  });

  it('HTTP/2: the default 1000 fields pass, above node:http2\'s own 128', async () => {
    const s = await h2connect(port('127.0.0.1:8081'));
    sessions.push(s);
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v']));
    assert.equal((await h2request(s, '/', { headers: many })).status, 200);
  });

  /** nginx's Perl HTTP/2 client: the preface alone, then, once the server's SETTINGS and WINDOW_UPDATE came, the ACK first. */
  const ackFirst = async (socket: Socket): Promise<void> => {
    sockets.push(socket);
    const reader = new FrameReader(socket);
    socket.write(PREFACE);
    let settings = false;
    let windowUpdate = false;
    await reader.until((frame) => {
      if (frame.type === 0x4 && (frame.flags & 0x1) === 0) settings = true;
      if (frame.type === 0x8 && frame.stream === 0) windowUpdate = true;
      return settings && windowUpdate;
    });
    socket.write(Buffer.concat([SETTINGS_ACK, getHeadersFrame()]));
    const frames = await reader.until((frame) => frame.type === 0x1 && frame.stream === 1);
    const response = frames[frames.length - 1] as Frame;
    // :status 200 is index 8 of HPACK's static table.
    assert.equal(response.payload[0], 0x88);
    assert.ok(!frames.some((frame) => frame.type === 0x7), 'no GOAWAY');
  };

  it('a client that sends the preface alone, waits for SETTINGS and WINDOW_UPDATE, then ACKs first, is served', async () => {
    await ackFirst(connect(port('127.0.0.1:8081'), '127.0.0.1'));
  });

  it('the same over TLS with ALPN h2', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: port('127.0.0.1:8443'), servername: 'a.test', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    assert.equal(socket.alpnProtocol, 'h2');
    await ackFirst(socket);
  });
});
