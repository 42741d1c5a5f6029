/**
 * `ssl_password_file` on a FIFO, hitless and Debian's nginx side by side: the file is read once,
 * when the configuration is, so a writer that writes the passphrases once is enough for two
 * workers, http and stream (a hitless worker used to open the FIFO again and wait for a writer
 * forever, and no handshake was ever answered).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** The FIFO of one binary's http or stream block: each ssl_password_file directive opens its file once. */
const fifoOf = (dir: string, binary: Binary, block: 'http' | 'stream'): string => join(dir, `${binary}-${block}.fifo`);

function conf(dir: string, binary: Binary, http: number, stream: number): string {
  const tls = (block: 'http' | 'stream'): string =>
    `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.encrypted.key')}; ssl_password_file ${fifoOf(dir, binary, block)};`;
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
pid ${join(dir, `${binary}.pid`)};
error_log ${join(dir, `${binary}-error.log`)} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${http} ssl; ${tls('http')} return 200 "http"; }
}
stream {
    server { listen 127.0.0.1:${stream} ssl; ${tls('stream')} return "stream"; }
}
`;
}

/** What a TLS connection reads until the server closes it (at most 10 s); `request` is sent first when given. */
function read(port: number, request?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from port ${port} within 10 s`)));
    socket.once('secureConnect', () => {
      if (request !== undefined) socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
  });
}

describe('ssl_password_file on a FIFO written once: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-fifo-'));
  const running: RunningServer[] = [];
  const writers: ChildProcess[] = [];
  const ports = {} as Record<Binary, { http: number; stream: number }>;

  before(async () => {
    writeFileSync(join(dir, 'passwords'), 'wrong\nsecond secret\n');
    for (const binary of BINARIES) {
      for (const block of ['http', 'stream'] as const) {
        const fifo = fifoOf(dir, binary, block);
        assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
        // One writer, which ends once the passphrases were read: a second open() would wait.
        writers.push(spawn('sh', ['-c', `cat ${join(dir, 'passwords')} > ${fifo}`], { stdio: 'ignore' }));
      }
      const p = { http: await freePort(), stream: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, binary, p.http, p.stream));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.http, p.stream]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    for (const writer of writers) writer.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: every connection is answered, by either worker, in http and in stream`, async () => {
      for (let i = 0; i < 6; i++) {
        assert.match(await read(ports[binary].http, 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhttp$/);
        assert.equal(await read(ports[binary].stream), 'stream');
      }
    });
  }
});
