/**
 * A stream server that speaks first over TLS 1.3 (a `return`) sends its NewSessionTickets before
 * the data, hitless and Debian's nginx side by side, so that a client which reads once and closes
 * (nginx-tests' stream_ssl_variables.t) has a session to resume, and `$ssl_session_reused` is `r`
 * when it does. Node emits a server's 'secure' before OpenSSL writes the tickets: hitless wrote the
 * answer first, and such a client never saw a ticket.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { FIXTURE_CA, fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

function conf(dir: string, port: number): string {
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
stream {
    ssl_session_cache builtin;
    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')};
        ssl_protocols TLSv1.2 TLSv1.3;
        return "$ssl_session_reused";
    }
}
`;
}

/** What one TLS 1.3 connection saw first (a ticket or the data), the first chunk, and the first ticket; it closes after one chunk. */
function readOnce(port: number, session?: Buffer): Promise<{ first: 'ticket' | 'data'; data: string; ticket: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let first: 'ticket' | 'data' | undefined;
    let ticket: Buffer | undefined;
    const socket = connect({ host: '127.0.0.1', port, servername: 'a.test', ca: FIXTURE_CA, minVersion: 'TLSv1.3', ...(session === undefined ? {} : { session }) });
    const timer = setTimeout(() => socket.destroy(new Error('No data within 10 s')), 10_000);
    socket.on('session', (received: Buffer) => {
      first ??= 'ticket';
      ticket ??= received;
    });
    socket.once('data', (chunk: Buffer) => {
      first ??= 'data';
      clearTimeout(timer);
      socket.destroy();
      resolve({ first, data: chunk.toString('latin1'), ticket });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('NewSessionTicket before a stream return over TLS 1.3: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-ticket-order-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, number>;

  before(async () => {
    for (const binary of BINARIES) {
      const port = await freePort();
      ports[binary] = port;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, port));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [port]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: the ticket comes first, and a client that read once resumes with it`, async () => {
      const fresh = await readOnce(ports[binary]);
      assert.equal(fresh.first, 'ticket');
      assert.equal(fresh.data, '.');
      assert.ok(fresh.ticket !== undefined);
      const resumed = await readOnce(ports[binary], fresh.ticket);
      assert.equal(resumed.data, 'r');
    });
  }
});
