/**
 * `$ssl_ciphers`, `$ssl_curves` and `$ssl_curve`, hitless and Debian's nginx side by side, in http
 * and stream: what the client offered (its cipher suites and groups, in its order, by OpenSSL's
 * names) and the group the key exchange took, for a TLS 1.3 key share the server takes, one it
 * answers with a HelloRetryRequest, a TLS 1.2 ECDHE suite and a TLS 1.2 RSA key exchange.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** http with ssl_ecdh_curve prime256v1:secp384r1, http with auto, stream with prime256v1:secp384r1. */
interface Ports {
  http: number;
  auto: number;
  stream: number;
}

const VALUES = '$ssl_ciphers|$ssl_curves|$ssl_curve';

function conf(dir: string, ports: Ports): string {
  const tls = `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; ssl_protocols TLSv1.2 TLSv1.3;`;
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid ${join(dir, 'run.pid')};
error_log ${join(dir, 'error.log')} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${ports.http} ssl; ${tls} ssl_ecdh_curve prime256v1:secp384r1; return 200 "${VALUES}"; }
    server { listen 127.0.0.1:${ports.auto} ssl; ${tls} return 200 "${VALUES}"; }
}
stream {
    server { listen 127.0.0.1:${ports.stream} ssl; ${tls} ssl_ecdh_curve prime256v1:secp384r1; return "${VALUES}"; }
}
`;
}

/** Connects with `options`, sends `request` when given, and resolves with the body (after the header block for http). */
function fetchValues(port: number, options: ConnectionOptions, request: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, ...options });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from port ${port} within 10 s`)));
    socket.once('secureConnect', () => {
      if (request !== undefined) socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(request === undefined ? text : text.slice(text.indexOf('\r\n\r\n') + 4)));
    socket.once('error', reject);
  });
}

const HTTP = 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n';

/** The client offers; the test compares what each binary answers for them. */
const CASES: readonly { name: string; options: ConnectionOptions }[] = [
  { name: 'TLS 1.3, a key share the server takes', options: { minVersion: 'TLSv1.3', ecdhCurve: 'secp384r1:prime256v1' } },
  { name: 'TLS 1.3, a key share the server answers with a HelloRetryRequest', options: { minVersion: 'TLSv1.3', ecdhCurve: 'X25519:prime256v1' } },
  { name: 'TLS 1.2, an ECDHE suite', options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA', ecdhCurve: 'secp384r1:prime256v1:X25519' } },
  { name: 'TLS 1.2, an RSA key exchange', options: { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-SHA' } },
];

describe('$ssl_ciphers, $ssl_curves and $ssl_curve: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-hello-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, Ports>;

  before(async () => {
    for (const binary of BINARIES) {
      const p = { http: await freePort(), auto: await freePort(), stream: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, p));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.http, p.auto, p.stream]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const { name, options } of CASES) {
    it(`${name}: the same values in http, with ssl_ecdh_curve auto, and in stream`, async () => {
      for (const [where, port, request] of [
        ['http', (p: Ports) => p.http, HTTP],
        ['auto', (p: Ports) => p.auto, HTTP],
        ['stream', (p: Ports) => p.stream, undefined],
      ] as const) {
        const nginx = await fetchValues(port(ports.nginx), options, request);
        const hitless = await fetchValues(port(ports.hitless), options, request);
        assert.equal(hitless, nginx, `${where}: ${name}`);
        assert.match(nginx, /^[\w:-]+\|[\w:]*\|\w*$/, `${where}: nginx answered the values`);
      }
    });
  }

  it('names the offers exactly: suites and groups in the client order, the group taken after a HelloRetryRequest', async () => {
    const options: ConnectionOptions = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA', ecdhCurve: 'secp384r1:prime256v1' };
    assert.equal(await fetchValues(ports.hitless.http, options, HTTP), 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:TLS_EMPTY_RENEGOTIATION_INFO_SCSV|secp384r1:prime256v1|secp384r1');
    const retried = await fetchValues(ports.hitless.http, { minVersion: 'TLSv1.3', ecdhCurve: 'X25519:prime256v1' }, HTTP);
    assert.match(retried, /\|X25519:prime256v1\|prime256v1$/);
  });
});
