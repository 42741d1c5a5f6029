/**
 * HTTP/2 rapid reset (CVE-2023-44487, issue 15), against the real binary. A client that opens
 * streams and resets them before any response (RST_STREAM CANCEL) is closed with
 * GOAWAY(ENHANCE_YOUR_CALM) once it has had 100 streams, half of them reset that way (Envoy's
 * premature-reset rule, docs/security.md); a client whose streams complete is not. Then a flood
 * from clients that reconnect each time they are closed: the worker's RSS stays bounded (a count
 * of MiB, not a speed), and the worker serves afterwards.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, get, startMaster, TestPrefix, type MasterUnderTest } from './helpers/masters.js';

/** The client preface and SETTINGS, then `count` HEADERS frames each followed by RST_STREAM(CANCEL) at once, as the attack sends them. */
function rapidResets(count: number): Buffer {
  const frames = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])];
  // :method GET, :path /, :scheme http, :authority a.
  const block = Buffer.from([0x82, 0x84, 0x86, 0x41, 0x01, 0x61]);
  for (let i = 0; i < count; i++) {
    const headers = Buffer.from([0, 0, block.length, 1, 0x05, 0, 0, 0, 0]);
    headers.writeUInt32BE(1 + 2 * i, 5);
    const reset = Buffer.from([0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, http2.constants.NGHTTP2_CANCEL]);
    reset.writeUInt32BE(1 + 2 * i, 5);
    frames.push(headers, block, reset);
  }
  return Buffer.concat(frames);
}

/** Sends `bytes`; resolves once the server closed the connection, with the first GOAWAY code it sent (at most 10 s). */
function firstGoaway(port: number, bytes: Buffer): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (let at = 0; at + 9 <= received.length; at += 9 + received.readUIntBE(at, 3)) {
        if (received[at + 3] === 7 && at + 17 <= received.length) {
          resolve(received.readUInt32BE(at + 13));
          return;
        }
      }
      resolve(undefined);
    });
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error('the connection was not closed within 10 s'));
    });
  });
}

/** `count` streams on one connection, each answered; resolves with the responses and any GOAWAY code. */
function completeStreams(port: number, count: number): Promise<{ goaway: number | undefined; completed: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    let goaway: number | undefined;
    let completed = 0;
    let ended = 0;
    session.on('error', reject);
    session.on('goaway', (code) => (goaway ??= code));
    for (let i = 0; i < count; i++) {
      const stream = session.request({ ':path': '/' });
      stream.on('error', reject);
      stream.on('response', () => completed++);
      stream.on('close', () => {
        if (++ended < count) return;
        session.close();
        resolve({ goaway, completed });
      });
      stream.resume();
    }
  });
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((text) => text.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024;
}

describe('HTTP/2 rapid reset', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let h1 = 0;
  let h2 = 0;
  let worker = 0;

  before(async () => {
    h1 = await freePort();
    h2 = await freePort();
    master = await startMaster({
      prefix,
      port: h1,
      program: 'hitless',
      conf: `worker_processes 1;\nerror_log logs/error.log info;\nevents {}\nhttp {\n    access_log off;\n    server {\n        listen 127.0.0.1:${h1};\n        listen 127.0.0.1:${h2} http2;\n        location / { return 200 "ok\\n"; }\n    }\n}\n`,
    });
    worker = Number(/start worker process (\d+)/.exec(prefix.errorLog())?.[1]);
    assert.ok(worker > 0);
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  it('a connection that resets its streams before their responses gets GOAWAY(ENHANCE_YOUR_CALM)', async () => {
    assert.equal(await firstGoaway(h2, rapidResets(400)), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.match(prefix.errorLog(), /client reset \d+ of \d+ streams before their response: closing the connection/);
  });

  it('a connection whose streams complete is not closed', async () => {
    const result = await completeStreams(h2, 300);
    assert.equal(result.goaway, undefined);
    assert.equal(result.completed, 300);
  });

  it('200 reconnecting flood connections: the worker\'s RSS stays within 64 MiB of where it began, and it serves', async (t) => {
    const before = rssMiB(worker);
    const flood = rapidResets(200);
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 10 }, () => firstGoaway(h2, flood)));
    const grown = rssMiB(worker) - before;
    t.diagnostic(`RSS ${before.toFixed(1)} MiB before, grew by ${grown.toFixed(1)} MiB`);
    assert.ok(grown < 64, `RSS grew by ${grown.toFixed(1)} MiB`);
    assert.deepEqual(await get(h1, '/'), { status: 200, body: 'ok\n' });
  });
});
