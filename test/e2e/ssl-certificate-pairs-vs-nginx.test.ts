/**
 * Certificates of one server, hitless and Debian's nginx side by side: a second RSA pair replaces
 * the first (SSL_CTX_use_certificate() keeps one certificate a key type), and an ECDSA pair stands
 * beside it; hitless used to refuse such a server ("key values mismatch"). And
 * `ssl_certificate_compression` (nginx 1.27.4, after Debian's 1.22, so hitless alone): what
 * nginx built with OpenSSL 3.0 says of it, the OpenSSL Node 20 bundles.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { configTest, startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

function conf(dir: string, port: number): string {
  const pair = (name: string): string => `ssl_certificate ${fixture(`${name}.fullchain.crt`)}; ssl_certificate_key ${fixture(`${name}.key`)};`;
  return `pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${port} ssl; ${pair('a-rsa')} ${pair('a-ec')} ${pair('a-rsa-2')} return 200 "ok"; }
}
`;
}

/** The subject and serial of the leaf a handshake offering only `sigalgs` gets (at most 10 s). */
function leafOf(port: number, sigalgs: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, sigalgs });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => {
      const leaf = socket.getPeerX509Certificate();
      resolve(`${leaf?.publicKey.asymmetricKeyType ?? ''} ${leaf?.serialNumber ?? ''}`);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('several certificates in a server: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-pairs-'));
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
    it(`${binary}: the last RSA pair and the ECDSA one are served`, async () => {
      const serial = (name: string): string => new X509Certificate(readFileSync(fixture(`${name}.crt`))).serialNumber;
      assert.equal(await leafOf(ports[binary], 'rsa_pss_rsae_sha256:RSA+SHA256'), `rsa ${serial('a-rsa-2')}`);
      assert.equal(await leafOf(ports[binary], 'ECDSA+SHA256'), `ec ${serial('a-ec')}`);
    });
  }

  it('hitless -t: ssl_certificate_compression on warns as nginx with OpenSSL 3.0; with ssl_stapling it fails', () => {
    const write = (name: string, extra: string): string => {
      const file = join(dir, name);
      writeFileSync(file, `events {}\nhttp { ssl_certificate_compression on; server { listen 127.0.0.1:1 ssl; ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; ${extra} } }\n`);
      return file;
    };
    const on = configTest('hitless', ['-p', `${dir}/`, '-c', write('on.conf', '')]);
    assert.equal(on.status, 0, on.output);
    assert.match(on.output, /\[warn\] "ssl_certificate_compression" is not supported on this platform, ignored\n/);
    const off = configTest('hitless', ['-p', `${dir}/`, '-c', write('off.conf', 'ssl_certificate_compression off;')]);
    assert.doesNotMatch(off.output, /ssl_certificate_compression/);
    const stapling = configTest('hitless', ['-p', `${dir}/`, '-c', write('stapling.conf', 'ssl_stapling on;')]);
    assert.notEqual(stapling.status, 0);
    assert.match(stapling.output, /\[emerg\] "ssl_stapling" is incompatible with "ssl_certificate_compression"\n/);
  });
});
