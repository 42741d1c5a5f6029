/**
 * `mirror` in front of `grpc_pass`: with mirror_request_body on the body is read before the
 * content phase, and the gRPC upstream must still get it whole (the regression: the body was
 * read for the mirror and the upstream got an empty stream).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../deploy/helpers/nginx.js';
import { HITLESS_BIN } from '../helpers/bin.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

function post(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', 'content-length': String(body.length) });
    let status = 0;
    let text = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    stream.on('end', () => {
      session.close();
      resolve({ status, body: text });
    });
    stream.on('error', reject);
    stream.setTimeout(15_000, () => stream.close());
    stream.end(body);
  });
}

describe('mirror before grpc_pass', () => {
  let dir: TempDir;
  let child: ChildProcess | undefined;
  let upstream: http2.Http2Server | undefined;
  const seen: string[] = [];
  let port = 0;

  before(async () => {
    dir = tempDir({ 'prefix/.keep': '' });
    upstream = http2.createServer();
    upstream.on('stream', (stream, headers) => {
      let body = '';
      stream.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
      stream.on('end', () => {
        seen.push(`${headers[':path'] as string} ${body}`);
        upstream?.emit('seen');
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.end(`got ${body}`);
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const up = (upstream.address() as AddressInfo).port;
    port = await freePort();
    const prefix = join(dir.path, 'prefix');
    const conf = join(prefix, 'hitless.conf');
    writeFileSync(conf, `events {} http { server { listen 127.0.0.1:${port}; http2 on;
      location / { mirror /copy; grpc_pass 127.0.0.1:${up}; }
      location /copy { internal; grpc_pass 127.0.0.1:${up}; } } }`);
    child = spawn(process.execPath, [HITLESS_BIN, '-p', `${prefix}/`, '-c', conf, '-g', `daemon off; pid ${join(prefix, 'pid')}; error_log ${join(prefix, 'error.log')} info;`], { stdio: 'ignore', detached: true });
    for (let i = 0; i < 200; i++) {
      if (await post(port, '/ready', '').then(() => true, () => false)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    seen.length = 0;
  });

  after(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
    upstream?.close();
    dir?.remove();
  });

  it('sends the body to the gRPC upstream and to the mirror', async () => {
    assert.deepEqual(await post(port, '/svc/Method', 'Hello'), { status: 200, body: 'got Hello' });
    // The mirror's stream may end after the client's response: wait for it.
    const signal = AbortSignal.timeout(15_000);
    while (seen.length < 2) await once(upstream as http2.Http2Server, 'seen', { signal });
    assert.deepEqual(seen.sort(), ['/copy Hello', '/svc/Method Hello']);
  });
});
