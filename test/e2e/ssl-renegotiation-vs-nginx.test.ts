/**
 * A TLS 1.2 client that renegotiates is refused, hitless and Debian's nginx side by side: nginx
 * sets SSL_OP_NO_RENEGOTIATION on every server connection (CVE-2009-3555), where Node lets a
 * client renegotiate three times in ten minutes (tls.CLIENT_RENEG_LIMIT), so hitless used to go
 * through a renegotiation and answer the request after it.
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

function conf(dir: string, port: number, noCert: number): string {
  return `pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
http {
    access_log off;
    ssl_protocols TLSv1.2;
    server { listen 127.0.0.1:${port} ssl; ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; return 200 "ok"; }
    server { listen 127.0.0.1:${noCert} ssl; server_name _; ssl_reject_handshake on; }
    server { listen 127.0.0.1:${noCert} ssl; server_name a.test; ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; return 200 "ok"; }
}
`;
}

/** Handshakes, asks for a renegotiation, then sends a request: how the renegotiation ended, and what came back. */
function renegotiate(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    let text = '';
    let outcome = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => {
      socket.renegotiate({ rejectUnauthorized: false }, (err) => {
        outcome = err === null ? 'renegotiated' : 'refused';
        if (err === null) socket.write('GET / HTTP/1.0\r\nHost: a.test\r\n\r\n');
        else socket.destroy();
      });
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('close', () => resolve(`${outcome === 'renegotiated' ? outcome : 'refused'}|${text.slice(text.indexOf('\r\n\r\n') + 4)}`));
    socket.on('error', () => undefined);
  });
}

describe('client-initiated renegotiation: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-reneg-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, { own: number; viaSni: number }>;

  before(async () => {
    for (const binary of BINARIES) {
      const p = { own: await freePort(), viaSni: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, p.own, p.viaSni));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.own, p.viaSni]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: refuses it, on a default server's context and behind a default without certificates`, async () => {
      assert.equal(await renegotiate(ports[binary].own), 'refused|');
      assert.equal(await renegotiate(ports[binary].viaSni), 'refused|');
    });
  }
});
