/**
 * Client certificates, hitless and Debian's nginx side by side: a stream server ends the session
 * of a client without the certificate `ssl_verify_client on` requires, and of one whose
 * certificate does not verify with `optional` (stream has no 495 or 496 to answer; hitless used
 * to go on to the content phase); and the CA names a CertificateRequest lists hold a certificate
 * that ssl_client_certificate repeats once, as openssl s_client reads them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** Stream with `on`, stream with `optional`, http whose CA file repeats its certificate. */
interface Ports {
  on: number;
  optional: number;
  http: number;
}

function conf(dir: string, ports: Ports): string {
  const cert = `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')};`;
  const values = 'return "$ssl_client_verify";';
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid ${join(dir, 'run.pid')};
error_log ${join(dir, 'error.log')} info;
events {}
stream {
    ${cert}
    ssl_client_certificate ${fixture('client-ca.crt')};
    server { listen 127.0.0.1:${ports.on} ssl; ssl_verify_client on; ${values} }
    server { listen 127.0.0.1:${ports.optional} ssl; ssl_verify_client optional; ${values} }
}
http {
    access_log off;
    server { listen 127.0.0.1:${ports.http} ssl; ${cert} ssl_verify_client optional; ssl_client_certificate ${join(dir, 'twice.crt')}; return 200 "$ssl_client_verify"; }
}
`;
}

/** What a TLS connection with `options` reads until the server closes it (at most 10 s); an error reads as ''. */
function read(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, ...options });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(text));
    socket.once('error', () => resolve(text));
  });
}

/** The "Acceptable client certificate CA names" openssl s_client prints for a handshake on `port`. */
function caNames(port: number): string[] {
  const result = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'a.test', '-tls1_2'], { input: '', encoding: 'utf8', timeout: 10_000 });
  const text = result.stdout;
  const start = text.indexOf('Acceptable client certificate CA names');
  if (start === -1) return [];
  const lines = text.slice(start).split('\n').slice(1);
  return lines.slice(0, lines.findIndex((line) => line.startsWith('Client Certificate Types')));
}

describe('client certificates in stream, and the CA names: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-verify-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, Ports>;

  before(async () => {
    const ca = readFileSync(fixture('client-ca.crt'), 'utf8');
    writeFileSync(join(dir, 'twice.crt'), ca + ca);
    for (const binary of BINARIES) {
      const p = { on: await freePort(), optional: await freePort(), http: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, p));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.on, p.optional, p.http]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const good = (): ConnectionOptions => ({ cert: readFileSync(fixture('client-a.crt')), key: readFileSync(fixture('client-a.key')) });
  const foreign = (): ConnectionOptions => ({ cert: readFileSync(fixture('client-foreign.crt')), key: readFileSync(fixture('client-foreign.key')) });

  for (const binary of BINARIES) {
    it(`${binary}: stream ends a session without the required certificate, or with one that does not verify`, async () => {
      assert.equal(await read(ports[binary].on, {}), '');
      assert.equal(await read(ports[binary].on, good()), 'SUCCESS');
      assert.equal(await read(ports[binary].optional, {}), 'NONE');
      assert.equal(await read(ports[binary].optional, foreign()), '');
      assert.equal(await read(ports[binary].optional, good()), 'SUCCESS');
    });
  }

  it('lists a certificate that ssl_client_certificate repeats once, as nginx', () => {
    const nginx = caNames(ports.nginx.http);
    assert.equal(nginx.length, 1, JSON.stringify(nginx));
    assert.deepEqual(caNames(ports.hitless.http), nginx);
  });
});
