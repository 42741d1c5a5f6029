/**
 * Fuzzing the HTTP/1 head parser and the HTTP/2 frame handling (issue 15), seeded and bounded, so
 * that a failure names the input that caused it and can be replayed.
 *
 * Corpus. HTTP/1: a GET with common headers, a POST with Content-Length, a chunked POST with a
 * trailer, an absolute-form target, two pipelined requests, a response head; each mutated by
 * inserting, deleting, replacing or repeating bytes drawn from what smugglers and broken clients
 * send (CR, LF, NUL, SP, HTAB, VT, NBSP, 0xff, ':', digits, "chunked", "Content-Length",
 * "Transfer-Encoding", "Host", "%00", "..") or copied from the input itself. HTTP/2: the client
 * preface and SETTINGS, then 1 to 12 frames of every type (DATA, HEADERS, PRIORITY, RST_STREAM,
 * SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION and unknown ones) with random
 * flags, stream ids, lengths and payloads, sometimes a valid HPACK block.
 *
 * Properties. The parser returns a head, asks for more bytes, or throws an HttpParseError with
 * one of nginx's statuses, never anything else, in bounded time. Against the real binary: every
 * connection gets an answer or a close within the time limit, the worker never dies (same pid,
 * no [alert] or [emerg] in the log), and after each batch a well-formed request is served.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HttpParseError, parseRequestHead, parseResponseHead } from '../../src/http/h1/head-parser.js';
import { ChunkedParser } from '../../src/http/h1/chunked.js';
import { random } from '../helpers/random.js';
import { freePort, get, startMaster, TestPrefix, type MasterUnderTest } from './helpers/masters.js';

const H1_CORPUS = [
  'GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nAccept: */*\r\nCookie: a=b; c=d\r\n\r\n',
  'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n',
  'GET http://example.com:8080/x/../y HTTP/1.1\r\nHost: ignored\r\n\r\n',
  'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
];
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n\r\nok';
const H1_ALPHABET = ['\r', '\n', '\r\n', '\0', ' ', '\t', '\x0b', '\xa0', '\xff', ':', '0', '9', 'f', 'chunked', 'Content-Length: ', 'Transfer-Encoding: ', 'Host: ', '%00', '..', '/', '?', '#', 'HTTP/1.1', 'HTTP/2.0', '@'];
const STATUSES = new Set([400, 405, 414, 494, 501, 505]);

function mutate(text: string, next: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  let out = text;
  const edits = 1 + Math.floor(next() * 5);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * (out.length + 1));
    switch (Math.floor(next() * 5)) {
      case 0:
        out = out.slice(0, at) + pick(H1_ALPHABET) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + Math.floor(next() * 8));
        break;
      case 2:
        out = out.slice(0, at) + pick(H1_ALPHABET) + out.slice(at + 1);
        break;
      case 3:
        out = out.slice(0, at) + pick(H1_ALPHABET).repeat(1 + Math.floor(next() * 300)) + out.slice(at);
        break;
      default: {
        const from = Math.floor(next() * out.length);
        out = out.slice(0, at) + out.slice(from, from + Math.floor(next() * 40)) + out.slice(at);
      }
    }
  }
  return out;
}

const FRAME_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0xff];
/** :method GET, :path /, :scheme http, :authority a (a literal). */
const GOOD_BLOCK = Buffer.from([0x82, 0x84, 0x86, 0x41, 0x01, 0x61]);

function frames(next: () => number): Buffer {
  const parts: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])];
  const count = 1 + Math.floor(next() * 12);
  for (let i = 0; i < count; i++) {
    const type = FRAME_TYPES[Math.floor(next() * FRAME_TYPES.length)] as number;
    const flags = Math.floor(next() * 256);
    const stream = next() < 0.2 ? 0 : 1 + 2 * Math.floor(next() * 8);
    let payload: Buffer;
    if (type === 1 && next() < 0.5) payload = GOOD_BLOCK;
    else {
      payload = Buffer.alloc(Math.floor(next() < 0.9 ? next() * 64 : next() * 20_000));
      for (let j = 0; j < payload.length; j++) payload[j] = Math.floor(next() * 256);
    }
    // Sometimes a length that lies about the payload.
    const length = next() < 0.1 ? Math.floor(next() * 0x10000) : payload.length;
    const head = Buffer.alloc(9);
    head.writeUIntBE(length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    parts.push(head, payload);
  }
  return Buffer.concat(parts);
}

/** Sends bytes on a new connection; resolves when the server closes it or answers and goes quiet. */
function throwAt(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    // The server must close a connection whose client has sent everything and closed its side.
    socket.setTimeout(15_000, () => {
      socket.destroy();
      reject(new Error(`the server held a fuzzed connection past 15 s: ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`));
    });
  });
}

describe('fuzz: the HTTP/1 head parser', () => {
  it('returns a head, asks for more, or throws an HttpParseError with one of nginx\'s statuses', () => {
    const seen = { head: 0, more: 0, refused: 0 };
    for (let seed = 1; seed <= 20_000; seed++) {
      const next = random(seed);
      const input = Buffer.from(mutate(H1_CORPUS[seed % H1_CORPUS.length] as string, next), 'latin1');
      try {
        const head = parseRequestHead(input);
        if (head === undefined) seen.more++;
        else {
          seen.head++;
          assert.ok(head.headBytes > 0 && head.headBytes <= input.length, `seed ${seed}`);
          if (head.chunked) new ChunkedParser().push(input, head.headBytes);
        }
      } catch (err) {
        assert.ok(err instanceof HttpParseError, `seed ${seed}: ${JSON.stringify(input.toString('latin1'))} threw ${String(err)}`);
        assert.ok(STATUSES.has(err.status) || err.status === 400, `seed ${seed}: status ${err.status}`);
        seen.refused++;
      }
    }
    // Every outcome must occur, or the mutations exercise nothing.
    assert.ok(seen.head > 0 && seen.more > 0 && seen.refused > 0, JSON.stringify(seen));
  });

  it('parses upstream response heads the same way: a head, more, or a 502', () => {
    for (let seed = 1; seed <= 5_000; seed++) {
      const input = Buffer.from(mutate(RESPONSE, random(seed)), 'latin1');
      try {
        parseResponseHead(input);
      } catch (err) {
        assert.ok(err instanceof HttpParseError && err.status === 502, `seed ${seed}: ${String(err)}`);
      }
    }
  });
});

describe('fuzz: the real binary under mutated HTTP/1 requests and random HTTP/2 frames', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let h1 = 0;
  let h2 = 0;
  let workerPid = 0;

  before(async () => {
    h1 = await freePort();
    h2 = await freePort();
    master = await startMaster({
      prefix,
      port: h1,
      program: 'hitless',
      conf: `worker_processes 1;
error_log logs/error.log info;
events {}
http {
    access_log off;
    client_header_timeout 2s;
    client_body_timeout 2s;
    send_timeout 2s;
    server {
        listen 127.0.0.1:${h1};
        listen 127.0.0.1:${h2} http2;
        location / { return 200 "ok\\n"; }
    }
}
`,
    });
    workerPid = Number(/start worker process (\d+)/.exec(prefix.errorLog())?.[1]);
    assert.ok(workerPid > 0);
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  /** The worker is the same process, serves, and logged nothing at [alert] or above. */
  async function assertHealthy(what: string): Promise<void> {
    assert.deepEqual(await get(h1, '/'), { status: 200, body: 'ok\n' }, what);
    assert.match(prefix.errorLog(), new RegExp(`start worker process ${workerPid}\\n`));
    assert.doesNotMatch(prefix.errorLog(), /\[(alert|crit|emerg)\]|worker process \d+ exited/, what);
    const session = http2.connect(`http://127.0.0.1:${h2}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        session.on('error', reject);
        const stream = session.request({ ':path': '/' });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      assert.equal(status, 200, what);
    } finally {
      session.destroy();
    }
  }

  it('200 mutated HTTP/1 requests: each answered or closed, the worker unharmed', async () => {
    for (let batch = 0; batch < 5; batch++) {
      await Promise.all(Array.from({ length: 40 }, (_, i) => {
        const seed = 1 + batch * 40 + i;
        return throwAt(h1, Buffer.from(mutate(H1_CORPUS[seed % H1_CORPUS.length] as string, random(seed)), 'latin1'));
      }));
      await assertHealthy(`after HTTP/1 batch ${batch}`);
    }
  });

  it('200 connections of random HTTP/2 frames: each closed, the worker unharmed', async () => {
    for (let batch = 0; batch < 5; batch++) {
      await Promise.all(Array.from({ length: 40 }, (_, i) => throwAt(h2, frames(random(100_000 + batch * 40 + i)))));
      await assertHealthy(`after HTTP/2 batch ${batch}`);
    }
  });
});
