/**
 * The stream proxy's `proxy_download_rate`, `proxy_upload_rate` and `proxy_buffer_size`, side by
 * side with Debian's nginx (libnginx-mod-stream): hitless refused them as unknown directives
 * (stream_limit_rate.t, stream_tcp_nodelay.t). nginx's rule (ngx_stream_proxy_process()): a read
 * takes at most rate x (whole seconds since the session began + 1) less what was read, and the
 * next read waits n / rate seconds; with a rate of 1, the first read is one byte, and the next
 * comes a second later. The checks count bytes at a moment well inside that second.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';
import { configTest } from './helpers/side-by-side.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** An echo backend that records, per connection, the size of each chunk it read. */
function echo(): { server: Server; reads: number[][]; port: () => number } {
  const reads: number[][] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const mine: number[] = [];
    reads.push(mine);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      mine.push(chunk.length);
      socket.write(chunk);
    });
    socket.on('end', () => socket.end());
  });
  return { server, reads, port: () => (server.address() as { port: number }).port };
}

/** Connects, sends `data`, and resolves with what came back 300 ms after the first byte (then closes). */
function firstSecond(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no byte within 5 s'));
    }, 5000);
    socket.on('connect', () => socket.write(data));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (got === '') {
        clearTimeout(timer);
        setTimeout(() => {
          socket.destroy();
          resolve(got);
        }, 300);
      }
      got += chunk.toString('latin1');
    });
  });
}

/** Sends `data` and resolves with what came back once as many bytes came (without a FIN, which would end the session first). */
function whole(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${got.length} bytes within 10 s`));
    }, 10_000);
    socket.on('connect', () => socket.write(data));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      if (got.length < data.length) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    });
  });
}

describe('stream proxy_download_rate, proxy_upload_rate, proxy_buffer_size: hitless and nginx side by side', () => {
  let pair: NginxPair;
  const backend = echo();

  before(async () => {
    await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
    const up = backend.port();
    pair = await startPair(
      (port, _dir, extra) => `load_module ${STREAM_MODULE};
events {}
stream {
    server { listen 127.0.0.1:${port}; proxy_pass 127.0.0.1:${up}; proxy_download_rate 1; }
    server { listen 127.0.0.1:${extra[0] ?? 0}; proxy_pass 127.0.0.1:${up}; proxy_upload_rate 1; }
    server { listen 127.0.0.1:${extra[1] ?? 0}; proxy_pass 127.0.0.1:${up}; proxy_buffer_size 1; tcp_nodelay off; }
    server { listen 127.0.0.1:${extra[2] ?? 0}; proxy_pass 127.0.0.1:${up}; proxy_download_rate 0; proxy_upload_rate 0; }
}
`,
      () => undefined,
      3,
    );
  });

  after(async () => {
    await pair?.stop();
    backend.server.close();
  });

  it('proxy_download_rate 1: the client gets one byte, and no second one within the first second', async () => {
    const expected = await firstSecond(pair.ports.nginx, '0123456789');
    const actual = await firstSecond(pair.ports.hitless, '0123456789');
    assert.equal(expected, '0', 'nginx itself');
    assert.equal(actual, expected);
  });

  it('proxy_upload_rate 1: the upstream reads one byte, and no second one within the first second', async () => {
    const before = backend.reads.length;
    const expected = await firstSecond(pair.extra.nginx[0] ?? 0, '0123456789');
    const nginxReads = backend.reads.slice(before).find((reads) => reads.length > 0);
    const middle = backend.reads.length;
    const actual = await firstSecond(pair.extra.hitless[0] ?? 0, '0123456789');
    const hitlessReads = backend.reads.slice(middle).find((reads) => reads.length > 0);
    assert.equal(expected, '0', 'nginx itself');
    assert.equal(actual, expected);
    assert.deepEqual(nginxReads?.slice(0, 1), [1], 'nginx itself');
    assert.deepEqual(hitlessReads?.slice(0, 1), nginxReads?.slice(0, 1));
  });

  it('proxy_buffer_size 1 passes every byte, one at a time, and a rate of 0 is no limit', async () => {
    const text = `${'1234567890'.repeat(10)}F`;
    for (const port of [pair.extra.nginx[1], pair.extra.hitless[1], pair.extra.nginx[2], pair.extra.hitless[2]]) {
      assert.equal(await whole(port ?? 0, text), text, `port ${port ?? 0}`);
    }
  });

  it('refuses a rate that is not a size, with nginx\'s words', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hitless-stream-rate-'));
    try {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, `load_module ${STREAM_MODULE};\nevents {}\nstream {\n    proxy_upload_rate 1x;\n    server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:2; }\n}\n`);
      const args = ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log'), '-g', `pid ${join(dir, 'pid')};`];
      const nginx = configTest('nginx', args);
      const hitless = configTest('hitless', args);
      const line = (output: string): string => /\[emerg\] (.*)/.exec(output)?.[1] ?? output;
      assert.match(line(nginx.output), /^"proxy_upload_rate" directive invalid value in .*nginx\.conf:4$/, 'nginx itself');
      assert.equal(line(hitless.output), line(nginx.output));
      assert.notEqual(hitless.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
