/**
 * Slowloris (issue 15): clients that dribble a request head are closed at client_header_timeout,
 * however often they send. Over HTTP/1.1 the timer used to be re-armed by every read, so a byte
 * every 200 ms held a connection for ever; nginx bounds the whole head (its read timer is set once)
 * and does the same here, side by side. Over HTTP/2 a HEADERS frame without END_HEADERS, then
 * silence, is a header block left open: closed with GOAWAY(PROTOCOL_ERROR), as nginx closes it,
 * while an idle HTTP/2 connection without an open block stays for its keepalive_timeout (Debian's
 * nginx 1.22 leaves such a block open past 20 s here; nginx since 1.19.7 times it out by
 * client_header_timeout in ngx_http_v2_read_handler(), which hitless follows).
 *
 * The dribbling never stops in these tests: a connection that closes was closed by the server.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/tmp.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const CONNECTIONS = 50;
const HEADER_TIMEOUT_S = 1;

/** A connection that sends a request line, then one header byte every 200 ms; resolves with its lifetime once the server closes it. */
function dribble(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const socket: Socket = connect(port, '127.0.0.1', () => {
      socket.write('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ');
      timer = setInterval(() => socket.write('x'), 200);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    });
    setTimeout(() => {
      socket.destroy();
      reject(new Error('a dribbling connection was still open after 20 s'));
    }, 20_000).unref();
  });
}

/** The HTTP/2 preface, SETTINGS, and HEADERS for stream 1 without END_HEADERS (:method GET, :path /, :scheme http). */
const OPEN_HEADER_BLOCK = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
  Buffer.from([0, 0, 3, 1, 0x01, 0, 0, 0, 1, 0x82, 0x84, 0x86]),
]);

/** A connection that leaves a header block open; resolves with the GOAWAY error code it got and its lifetime, once closed. */
function openHeaderBlock(port: number): Promise<{ goaway: number | undefined; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let received = Buffer.alloc(0);
    const socket = connect(port, '127.0.0.1', () => socket.write(OPEN_HEADER_BLOCK));
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ goaway: goawayCode(received), ms: Date.now() - started }));
    setTimeout(() => {
      socket.destroy();
      reject(new Error('an open header block was still open after 20 s'));
    }, 20_000).unref();
  });
}

/** The error code of the first GOAWAY frame among the server's frames. */
function goawayCode(bytes: Buffer): number | undefined {
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === 0x07 && at + 9 + 8 <= bytes.length) return bytes.readUInt32BE(at + 9 + 4);
    at += 9 + length;
  }
  return undefined;
}

describe('slowloris: a dribbled request head is cut at client_header_timeout', () => {
  const dir = tempDir();
  const servers: RunningServer[] = [];
  const ports = { hitless: { h1: 0, h2: 0 }, nginx: { h1: 0, h2: 0 } };

  before(async () => {
    for (const name of ['hitless', 'nginx'] as const) {
      const side = ports[name];
      side.h1 = await freePort();
      side.h2 = await freePort();
      const conf = join(dir.path, `${name}.conf`);
      writeFileSync(conf, `worker_processes 1;
pid ${dir.path}/${name}.pid;
error_log ${dir.path}/${name}-error.log info;
events {}
http {
  access_log off;
  client_header_timeout ${HEADER_TIMEOUT_S}s;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${side.h1};
    listen 127.0.0.1:${side.h2} http2;
    location / { return 200 "ok\\n"; }
  }
}
`);
      servers.push(await startServer(name, ['-p', `${dir.path}/`, '-c', conf, '-g', 'daemon off;'], [side.h1, side.h2]));
    }
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    dir.remove();
  });

  for (const name of ['nginx', 'hitless'] as const) {
    it(`${name}: ${CONNECTIONS} HTTP/1.1 connections dribbling a byte every 200 ms are all closed, none lasting past twice the timeout`, async () => {
      const lifetimes = await Promise.all(Array.from({ length: CONNECTIONS }, () => dribble(ports[name].h1)));
      // Closed by the server while still sending; the bound is the count of those that got past 2x.
      assert.equal(lifetimes.filter((ms) => ms > 2 * HEADER_TIMEOUT_S * 1000 + 1000).length, 0, `lifetimes: ${lifetimes.join(', ')} ms`);
    });
  }

  it('hitless: an HTTP/2 header block left open gets GOAWAY(PROTOCOL_ERROR) and the connection closes; an idle connection stays', async () => {
    const idle = http2.connect(`http://127.0.0.1:${ports.hitless.h2}`);
    let idleClosed = false;
    idle.on('close', () => (idleClosed = true));
    idle.on('error', () => undefined);
    await new Promise<void>((resolve) => idle.once('remoteSettings', () => resolve()));
    // One request first: a connection that sends none is closed at client_header_timeout too, as
    // nginx's ngx_http_v2_init() timer closes it; after one, keepalive_timeout (60 s) keeps it.
    await new Promise<void>((resolve, reject) => {
      const stream = idle.request({ ':path': '/' });
      stream.on('error', reject);
      stream.resume();
      stream.on('end', () => resolve());
    });
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => openHeaderBlock(ports.hitless.h2)));
      for (const result of results) assert.equal(result.goaway, http2.constants.NGHTTP2_PROTOCOL_ERROR);
      assert.equal(idleClosed, false, 'the idle connection was closed with them');
      // The idle connection still serves.
      const status = await new Promise<number>((resolve, reject) => {
        const stream = idle.request({ ':path': '/' });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      assert.equal(status, 200);
    } finally {
      idle.destroy();
    }
  });
});
