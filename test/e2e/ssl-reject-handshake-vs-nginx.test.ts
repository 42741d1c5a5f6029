/**
 * `ssl_reject_handshake on` answers the unrecognized_name alert, hitless and Debian's nginx side by
 * side in http: for a name that selects the rejecting server and, when that is the default, for
 * a ClientHello without SNI; another name on the same address handshakes. Node's SNICallback can
 * only drop the connection, so hitless used to close it without an alert (and to answer
 * handshake_failure without SNI). Stream has the directive since nginx 1.25.5, after Debian's
 * 1.22: hitless alone is checked there.
 */
import assert from 'node:assert/strict';
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

function conf(dir: string, port: number, stream: number | undefined): string {
  const cert = `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')};`;
  return `${stream === undefined ? '' : 'load_module /usr/lib/nginx/modules/ngx_stream_module.so;'}
pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${port} ssl; server_name localhost; ssl_reject_handshake on; }
    server { listen 127.0.0.1:${port}; server_name a.test; ${cert} return 200 "a.test"; }
}
${stream === undefined ? '' : `stream { server { listen 127.0.0.1:${stream} ssl; ssl_reject_handshake on; return "never"; } }`}
`;
}

/** A handshake with `servername` (none when undefined): the error's code, or what the server answered. */
function attempt(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => socket.write(`GET / HTTP/1.0\r\nHost: ${servername ?? 'localhost'}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(text.slice(text.indexOf('\r\n\r\n') + 4)));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('ssl_reject_handshake answers unrecognized_name: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-reject-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, number>;
  let stream = 0;

  before(async () => {
    stream = await freePort();
    for (const binary of BINARIES) {
      const port = await freePort();
      ports[binary] = port;
      const file = join(dir, `${binary}.conf`);
      // Debian's nginx 1.22 has no ssl_reject_handshake in stream.
      writeFileSync(file, conf(dir, port, binary === 'hitless' ? stream : undefined));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], binary === 'hitless' ? [port, stream] : [port]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: the rejecting default answers the alert for its name and without SNI; another name handshakes`, async () => {
      assert.equal(await attempt(ports[binary], 'localhost'), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
      assert.equal(await attempt(ports[binary], undefined), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
      assert.equal(await attempt(ports[binary], 'a.test'), 'a.test');
    });
  }

  it('hitless: a stream server with ssl_reject_handshake answers the alert too', async () => {
    assert.equal(await attempt(stream, 'x.test'), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
  });
});
