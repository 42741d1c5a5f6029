/**
 * TLS 1.3 resumption from `ssl_session_cache` with `ssl_session_tickets off` (stateful tickets,
 * whose identity is the cached session's id), and a stream server that listens with and without
 * `ssl`, hitless and Debian's nginx side by side. Node looks a session up by the ClientHello's
 * legacy_session_id only, so hitless used to resume no TLS 1.3 session from its cache; and a
 * stream server with one `listen ... ssl` wanted a handshake on its plain address too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** http with a shared cache, http with builtin, stream with shared, the stream server's plain address. */
interface Ports {
  shared: number;
  builtin: number;
  stream: number;
  plain: number;
}

function conf(dir: string, ports: Ports): string {
  const tls = `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off;`;
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid ${join(dir, 'run.pid')};
error_log ${join(dir, 'error.log')} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${ports.shared} ssl; ${tls} ssl_session_cache shared:HTTP:1m; return 200 "$ssl_session_reused"; }
    server { listen 127.0.0.1:${ports.builtin} ssl; ${tls} ssl_session_cache builtin; return 200 "$ssl_session_reused"; }
}
stream {
    server {
        listen 127.0.0.1:${ports.plain};
        listen 127.0.0.1:${ports.stream} ssl;
        ${tls}
        return "$ssl_session_reused:$ssl_protocol";
    }
}
`;
}

/**
 * One TLS 1.3 connection offering `session`: what the server answered (the body for http), and the
 * last session the server gave (Node's 'session' event), once the server closed (at most 10 s).
 */
function exchange(port: number, http: boolean, session?: Buffer): Promise<{ answer: string; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, minVersion: 'TLSv1.3', ...(session === undefined ? {} : { session }) });
    let text = '';
    let latest: Buffer | undefined;
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from port ${port} within 10 s`)));
    socket.on('session', (data: Buffer) => (latest = data));
    socket.once('secureConnect', () => {
      if (http) socket.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('close', () => resolve({ answer: http ? text.slice(text.indexOf('\r\n\r\n') + 4) : text, session: latest }));
    socket.once('error', reject);
  });
}

/** What a plain TCP connection reads until the server closes it (at most 10 s). */
function readPlain(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from port ${port} within 10 s`)));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('close', () => resolve(text));
    socket.once('error', reject);
  });
}

describe('TLS 1.3 sessions of ssl_session_cache without tickets, and a stream server on plain and ssl addresses: hitless and nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-tls13-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, Ports>;

  before(async () => {
    for (const binary of BINARIES) {
      const p = { shared: await freePort(), builtin: await freePort(), stream: await freePort(), plain: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, p));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.shared, p.builtin, p.stream, p.plain]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    for (const cache of ['shared', 'builtin'] as const) {
      it(`${binary}: http resumes a TLS 1.3 session from ssl_session_cache ${cache}`, async () => {
        const first = await exchange(ports[binary][cache], true);
        assert.equal(first.answer, '.');
        assert.ok(first.session !== undefined, 'the server gave a session');
        const second = await exchange(ports[binary][cache], true, first.session);
        assert.equal(second.answer, 'r');
      });
    }

    it(`${binary}: a stream server terminates TLS on its ssl address only`, async () => {
      assert.equal(await readPlain(ports[binary].plain), ':');
      assert.equal((await exchange(ports[binary].stream, false)).answer, '.:TLSv1.3');
    });
  }
});
