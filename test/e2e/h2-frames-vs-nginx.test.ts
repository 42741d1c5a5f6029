/**
 * http2_chunk_size and http2_body_preread_size side by side with Debian's nginx, over raw frames
 * (node:http2's client hides frame boundaries and its own SETTINGS): the SETTINGS the server
 * announces (SETTINGS_INITIAL_WINDOW_SIZE is the preread size, SETTINGS_MAX_FRAME_SIZE the
 * largest), a body cut into DATA frames of the chunk size with END_STREAM on the last, a stream
 * with a body refused (REFUSED_STREAM) before the client acknowledged a preread size below the
 * default window, a body the handler never read stopped by RST_STREAM(NO_ERROR) once the response
 * is complete, a method nginx's parser refuses (lower-case) answered 400, and a body that only arrives once the server opens the window of a zero preread
 * size (nginx by WINDOW_UPDATE, hitless by raising SETTINGS_INITIAL_WINDOW_SIZE); a client that
 * sends HEADERS right after the preface without any SETTINGS; `$request_length` as the header
 * block's bytes on the wire (padding, priority and CONTINUATION, frames cut across writes).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

/** One frame as read from the wire. */
interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

const DATA = 0;
const HEADERS = 1;
const CONTINUATION = 9;
const RST_STREAM = 3;
const SETTINGS = 4;
const WINDOW_UPDATE = 8;

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

/** HEADERS (END_HEADERS) of `method` `path`, :authority localhost; END_STREAM unless `body`. */
function request(stream: number, method: string, path: string, body: boolean): Buffer {
  const methodField = method === 'GET' ? Buffer.from([0x82]) : method === 'POST' ? Buffer.from([0x83]) : literal(':method', method);
  const block = Buffer.concat([methodField, Buffer.from([0x86]), literal(':path', path), literal(':authority', 'localhost')]);
  return frame(HEADERS, body ? 0x04 : 0x05, stream, block);
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A raw HTTP/2 client connection: sends bytes, keeps every frame the server sent. */
class RawH2 {
  readonly frames: Frame[] = [];
  readonly #socket: Socket;
  #bytes = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#bytes = Buffer.concat([this.#bytes, chunk]);
      while (this.#bytes.length >= 9) {
        const length = this.#bytes.readUIntBE(0, 3);
        if (this.#bytes.length < 9 + length) break;
        this.frames.push({ type: this.#bytes[3] ?? 0, flags: this.#bytes[4] ?? 0, stream: this.#bytes.readUInt32BE(5) & 0x7fffffff, payload: this.#bytes.subarray(9, 9 + length) });
        this.#bytes = this.#bytes.subarray(9 + length);
      }
      for (const waiter of this.#waiters.splice(0)) waiter();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter();
    });
  }

  /** Connects and sends the preface, then `first` in the same write (default: an empty SETTINGS frame; empty: the preface alone, as nginx-tests' client does). */
  static open(port: number, first: Buffer = frame(SETTINGS, 0, 0)): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        socket.write(Buffer.concat([PREFACE, first]));
        resolve(new RawH2(socket));
      });
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  /** Resolves with the first frame `match` accepts, at most 5 s after the call. */
  async waitFor(what: string, match: (frame: Frame) => boolean): Promise<Frame> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const found = this.frames.find(match);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.#closed) throw new Error(`no ${what}: ${this.frames.map((f) => f.type).join(' ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The server's first SETTINGS (not an ACK), as id -> value. */
  async settings(): Promise<Map<number, number>> {
    const settings = await this.waitFor('SETTINGS', (f) => f.type === SETTINGS && (f.flags & 1) === 0);
    const values = new Map<number, number>();
    for (let at = 0; at + 6 <= settings.payload.length; at += 6) values.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2));
    return values;
  }

  close(): void {
    this.#socket.destroy();
  }
}

describe('http2_chunk_size and http2_body_preread_size: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: http.Server;
  const open: RawH2[] = [];
  const client = async (port: number, first?: Buffer): Promise<RawH2> => {
    const raw = await RawH2.open(port, first);
    open.push(raw);
    return raw;
  };

  before(async () => {
    upstream = http.createServer((req, res) => {
      let length = 0;
      req.on('data', (chunk: Buffer) => (length += chunk.length));
      req.on('end', () => res.end(`got ${length}`));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const up = (upstream.address() as AddressInfo).port;
    pair = await startPair(
      (port, _dir, [zero]) => `
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port} http2;
        server_name localhost;
        http2_body_preread_size 10;
        location /chunk { http2_chunk_size 1; return 200 'body'; }
        location /rl { return 200 $request_length; }
        location / { return 200 'hello'; }
    }
    server {
        listen 127.0.0.1:${zero} http2;
        server_name localhost;
        http2_body_preread_size 0;
        location / { proxy_pass http://127.0.0.1:${up}; }
    }
}
`,
      undefined,
      1,
    );
  });

  after(async () => {
    for (const raw of open) raw.close();
    await pair?.stop();
    await new Promise<void>((resolve) => (upstream === undefined ? resolve() : upstream.close(() => resolve())));
  });

  for (const server of ['hitless', 'nginx'] as const) {
    it(`${server}: SETTINGS announce the preread size as the initial window and the largest frame size`, async () => {
      const raw = await client(pair.ports[server]);
      const settings = await raw.settings();
      assert.equal(settings.get(0x4), 10);
      assert.equal(settings.get(0x5), 2 ** 24 - 1);
    });

    it(`${server}: a client that sends no SETTINGS (the preface alone, then the ACK first) is sent no SETTINGS ACK`, async () => {
      // nginx-tests' HTTP/2 client: read(all => [{ fin => 1 }]) ends at any frame with flag 0x1, a SETTINGS ACK too.
      const raw = await client(pair.ports[server], Buffer.alloc(0));
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), request(1, 'GET', '/chunk', false)]));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      assert.deepEqual(raw.frames.filter((f) => f.type === SETTINGS && (f.flags & 1) === 1), []);
      assert.deepEqual(raw.frames.filter((f) => f.stream === 1).map((f) => f.type), [HEADERS, DATA, DATA, DATA, DATA]);
    });

    it(`${server}: http2_chunk_size 1 sends "body" as four DATA frames, END_STREAM on the last`, async () => {
      const raw = await client(pair.ports[server]);
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), request(1, 'GET', '/chunk', false)]));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      const data = raw.frames.filter((f) => f.type === DATA && f.stream === 1);
      assert.deepEqual(
        data.map((f) => [f.payload.toString(), f.flags]),
        [
          ['b', 0],
          ['o', 0],
          ['d', 0],
          ['y', 1],
        ],
      );
    });

    it(`${server}: a stream with a body before the SETTINGS ACK is refused (preread below 65535)`, async () => {
      const raw = await client(pair.ports[server]);
      raw.send(Buffer.concat([request(1, 'POST', '/', true), frame(DATA, 1, 1, Buffer.from('TEST'))]));
      const reset = await raw.waitFor('RST_STREAM', (f) => f.type === RST_STREAM && f.stream === 1);
      assert.equal(reset.payload.readUInt32BE(0), 7);
    });

    // nginx-tests' client with `pure` (h2_request_body_preread.t): no SETTINGS at all, HEADERS in
    // the write of the preface; nghttp2 alone would end the session (its first frame must be SETTINGS).
    it(`${server}: HEADERS with a body right after the preface, no SETTINGS, is refused (preread below 65535)`, async () => {
      const raw = await client(pair.ports[server], Buffer.concat([request(1, 'POST', '/', true), frame(DATA, 1, 1, Buffer.from('TEST'))]));
      const reset = await raw.waitFor('RST_STREAM', (f) => f.type === RST_STREAM && f.stream === 1);
      assert.equal(reset.payload.readUInt32BE(0), 7);
    });

    it(`${server}: HEADERS without a body right after the preface, no SETTINGS, is served`, async () => {
      const raw = await client(pair.ports[server], request(1, 'GET', '/', false));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      const body = Buffer.concat(raw.frames.filter((f) => f.type === DATA && f.stream === 1).map((f) => f.payload)).toString();
      assert.equal(body, 'hello');
    });

    // ngx_http_v2_state_headers(), ngx_http_v2_handle_continuation(): the header block fragments'
    // bytes, without frame headers, pad length, padding or priority fields.
    const block = Buffer.concat([Buffer.from([0x82, 0x86]), literal(':path', '/rl'), literal(':authority', 'localhost')]);
    const requestLength = async (first: Buffer, stream = 1): Promise<string> => {
      const raw = await client(pair.ports[server]);
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), first]));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === stream && (f.flags & 1) === 1);
      return Buffer.concat(raw.frames.filter((f) => f.type === DATA && f.stream === stream).map((f) => f.payload)).toString();
    };

    it(`${server}: $request_length is the header block's bytes on the wire (one HEADERS frame)`, async () => {
      assert.equal(await requestLength(frame(HEADERS, 0x05, 1, block)), String(block.length));
    });

    it(`${server}: $request_length counts HEADERS and CONTINUATION fragments, not padding or priority`, async () => {
      // PADDED | PRIORITY, no END_HEADERS: pad length 3, dependency 0 weight 16, the first 5 bytes, padding; then the rest.
      const headers = frame(HEADERS, 0x01 | 0x08 | 0x20, 1, Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 15]), block.subarray(0, 5), Buffer.alloc(3)]));
      const continuation = frame(CONTINUATION, 0x04, 1, block.subarray(5));
      assert.equal(await requestLength(Buffer.concat([headers, continuation])), String(block.length));
    });

    it(`${server}: $request_length of a second stream on the connection, its frames cut across writes`, async () => {
      const raw = await client(pair.ports[server]);
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), frame(HEADERS, 0x05, 1, block)]));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      // HPACK's dynamic table is empty, so stream 3's block is the same bytes; sent a few at a time.
      const bytes = frame(HEADERS, 0x05, 3, block);
      for (let at = 0; at < bytes.length; at += 4) {
        raw.send(bytes.subarray(at, at + 4));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 3 && (f.flags & 1) === 1);
      const body = Buffer.concat(raw.frames.filter((f) => f.type === DATA && f.stream === 3).map((f) => f.payload)).toString();
      assert.equal(body, String(block.length));
    });

    it(`${server}: a method with a lower-case letter is a 400`, async () => {
      const raw = await client(pair.ports[server]);
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), request(1, 'foo', '/', false)]));
      const head = await raw.waitFor('HEADERS', (f) => f.type === HEADERS && f.stream === 1);
      // :status 400 is entry 12 of HPACK's static table (RFC 7541 appendix A).
      assert.equal(head.payload[0], 0x8c);
    });

    it(`${server}: a body the handler never reads is stopped after the response with RST_STREAM(NO_ERROR)`, async () => {
      const raw = await client(pair.ports[server]);
      await raw.settings();
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), request(1, 'GET', '/', true)]));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      const reset = await raw.waitFor('RST_STREAM', (f) => f.type === RST_STREAM && f.stream === 1);
      assert.equal(reset.payload.readUInt32BE(0), 0);
    });

    it(`${server}: with a zero preread size the body comes once the server opens the window`, async () => {
      const raw = await client(pair.extra[server][0] ?? 0);
      const settings = await raw.settings();
      assert.equal(settings.get(0x4), 0);
      raw.send(Buffer.concat([frame(SETTINGS, 1, 0), request(1, 'POST', '/', true)]));
      // nginx sends WINDOW_UPDATE for the stream; hitless SETTINGS with a larger initial window.
      const opened = await raw.waitFor('an opened window', (f) => (f.type === WINDOW_UPDATE && f.stream === 1) || (f.type === SETTINGS && (f.flags & 1) === 0 && f !== raw.frames.find((g) => g.type === SETTINGS)));
      if (opened.type === SETTINGS) raw.send(frame(SETTINGS, 1, 0));
      raw.send(frame(DATA, 1, 1, Buffer.from('SEE-THIS')));
      await raw.waitFor('END_STREAM', (f) => f.type === DATA && f.stream === 1 && (f.flags & 1) === 1);
      const body = Buffer.concat(raw.frames.filter((f) => f.type === DATA && f.stream === 1).map((f) => f.payload)).toString();
      assert.equal(body, 'got 8');
    });
  }
});
