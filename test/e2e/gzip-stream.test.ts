/**
 * A large proxied response is gzipped as a stream: hitless reads from upstream only as fast as
 * the client takes the compressed bytes, so what is in flight (sent by upstream, not yet received
 * by the client) stays bounded (a count of bytes, not a speed) while 128 MiB pass, and the client's copy is the upstream's.
 * The client stops reading at every 16 MiB and resumes only once upstream is held back (its
 * write returns false, or it is waiting already): without back-pressure through zlib that never
 * happens before the whole body is sent, and the bound fails.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createGunzip } from 'node:zlib';
import { freePort } from '../deploy/helpers/nginx.js';
import { HITLESS_BIN } from '../helpers/bin.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const TOTAL = 128 * 1024 * 1024;
const CHUNK = 64 * 1024;
const PAUSE_EVERY = 16 * 1024 * 1024;
/** Kernel socket buffers on loopback (both hops, both directions) and zlib's and the streams' own buffers fit in this. */
const IN_FLIGHT_BOUND = 64 * 1024 * 1024;
const KEY = Buffer.alloc(16, 7);

/** Chunk `i` of the body: hex of AES-CTR bytes, which gzip halves (little more), different in every chunk. */
function chunkOf(i: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(i, 12);
  const cipher = createCipheriv('aes-128-ctr', KEY, iv);
  return Buffer.from(cipher.update(Buffer.alloc(CHUNK / 2)).toString('hex'), 'latin1');
}

describe('gzip streams a large proxied response with back-pressure', () => {
  let dir: TempDir;
  let upstream: Server;
  let child: ChildProcess | undefined;
  let port = 0;
  let sent = 0;
  let blocked: (() => void) | undefined;
  /** Upstream waits on 'drain': it is held back now. */
  let waiting = false;

  before(async () => {
    upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(TOTAL) });
      let i = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          const chunk = chunkOf(i++);
          sent += chunk.length;
          if (!res.write(chunk)) {
            waiting = true;
            blocked?.();
            res.once('drain', () => {
              waiting = false;
              pump();
            });
            return;
          }
        }
        res.end();
        blocked?.();
      };
      pump();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    dir = tempDir();
    port = await freePort();
    const conf = join(dir.path, 'hitless.conf');
    writeFileSync(conf, `events {}
http {
    server {
        listen 127.0.0.1:${port};
        gzip on;
        gzip_types text/plain;
        location / { proxy_pass http://127.0.0.1:${upstreamPort}; }
    }
}
`);
    const globals = `daemon off; pid ${join(dir.path, 'hitless.pid')}; error_log ${join(dir.path, 'error.log')} info;`;
    child = spawn(process.execPath, [HITLESS_BIN, '-p', `${dir.path}/`, '-c', conf, '-g', globals], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Ready once the port accepts (hitless logs to its error_log file, not stderr).
    const { createConnection } = await import('node:net');
    for (let tries = 0; ; tries++) {
      if (child.exitCode !== null) throw new Error(`hitless exited: ${stderr}`);
      const open = await new Promise<boolean>((resolve) => {
        const socket = createConnection(port, '127.0.0.1');
        socket.once('connect', () => (socket.destroy(), resolve(true)));
        socket.once('error', () => resolve(false));
      });
      if (open) break;
      if (tries > 200) throw new Error(`hitless did not listen: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  after(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    upstream.closeAllConnections();
    dir.remove();
  });

  it('keeps what is in flight bounded and delivers the body intact', async () => {
    let received = 0;
    let worst = 0;
    let i = 0;
    let pending = Buffer.alloc(0);
    let mismatch = -1;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { 'accept-encoding': 'gzip' } }, (res) => {
        assert.equal(res.headers['content-encoding'], 'gzip');
        assert.equal(res.headers['content-length'], undefined);
        const gunzip = createGunzip();
        let nextPause = PAUSE_EVERY;
        gunzip.on('data', (data: Buffer) => {
          received += data.length;
          worst = Math.max(worst, sent - received);
          // Compare whole chunks as they complete.
          pending = Buffer.concat([pending, data]);
          while (pending.length >= CHUNK) {
            if (mismatch === -1 && !pending.subarray(0, CHUNK).equals(chunkOf(i))) mismatch = i;
            pending = pending.subarray(CHUNK);
            i++;
          }
          // Upstream already held back is what the pause waits for.
          if (received >= nextPause && sent < TOTAL && !waiting) {
            nextPause += PAUSE_EVERY;
            testPause = true;
            res.pause();
            blocked = () => {
              blocked = undefined;
              testPause = false;
              worst = Math.max(worst, sent - received);
              if (!gunzipFull) res.resume();
            };
          }
        });
        gunzip.once('end', resolve);
        gunzip.once('error', reject);
        // Not pipe(): its own flow control would resume the response the test paused.
        // The client's own gunzip holds the response back too (else a slow client buffers without bound).
        let testPause = false;
        let gunzipFull = false;
        res.on('data', (data: Buffer) => {
          if (gunzip.write(data)) return;
          gunzipFull = true;
          res.pause();
          gunzip.once('drain', () => {
            gunzipFull = false;
            if (!testPause) res.resume();
          });
        });
        res.once('end', () => gunzip.end());
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(received, TOTAL);
    assert.equal(mismatch, -1, `chunk ${mismatch} differs`);
    assert.ok(worst < IN_FLIGHT_BOUND, `${worst} bytes were in flight at once (bound ${IN_FLIGHT_BOUND})`);
  });
});
