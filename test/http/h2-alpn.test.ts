/**
 * `http2` per virtual server over TLS (h2_http2.t): ALPN offers h2 when the server the SNI names,
 * or the default one without SNI, has http2 on (ngx_http_ssl_alpn_select()), and an HTTP/2 stream
 * whose Host names a server with http2 off is answered 421 (ngx_http_v2_run_request()), unless
 * the address has `listen ... http2`. hitless chose ALPN by the default server alone.
 */
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serve, type Served } from './helpers.js';

const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));

/** The protocol ALPN chose when offering `protocols` with SNI `servername` (none when undefined). */
function negotiated(port: number, servername: string | undefined, protocols: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...(servername === undefined ? {} : { servername }), ALPNProtocols: protocols, rejectUnauthorized: false }, () => {
      const chosen = socket.alpnProtocol ?? false;
      socket.destroy();
      resolve(chosen);
    });
    socket.once('error', reject);
    socket.setTimeout(5_000, () => reject(new Error('no handshake within 5 s')));
  });
}

describe('http2 per virtual server: ALPN by SNI, 421 by Host', () => {
  let served: Served;
  const sessions: ClientHttp2Session[] = [];

  before(async () => {
    served = await serve(
      `http {
        access_log off;
        ssl_certificate ${TLS}a-rsa.fullchain.crt;
        ssl_certificate_key ${TLS}a-rsa.key;
        server { listen 127.0.0.1:8443 ssl; server_name default; http2 on; return 200 default; }
        server { listen 127.0.0.1:8443; server_name enabled; http2 on; return 200 enabled; }
        server { listen 127.0.0.1:8443; server_name disabled; http2 off; return 200 disabled; }
        server { listen 127.0.0.1:8444 ssl; server_name default; return 200 default; }
        server { listen 127.0.0.1:8444; server_name enabled; http2 on; return 200 enabled; }
      }`,
      '/tmp/',
    );
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await served?.stop();
  });

  it('offers h2 by the server the SNI names, or the default server without SNI', async () => {
    const on = served.ports.get('127.0.0.1:8443') ?? 0;
    const off = served.ports.get('127.0.0.1:8444') ?? 0;
    assert.equal(await negotiated(on, undefined, ['h2', 'http/1.1']), 'h2');
    assert.equal(await negotiated(on, 'disabled', ['h2', 'http/1.1']), 'http/1.1');
    assert.equal(await negotiated(off, undefined, ['h2', 'http/1.1']), 'http/1.1');
    assert.equal(await negotiated(off, 'enabled', ['h2', 'http/1.1']), 'h2');
  });

  it('answers 421 to a stream whose Host names a server with http2 off', async () => {
    const port = served.ports.get('127.0.0.1:8443') ?? 0;
    const session = h2connect(`https://127.0.0.1:${port}`, { servername: 'enabled', rejectUnauthorized: false });
    session.on('error', () => undefined);
    sessions.push(session);
    const status = (authority: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/', ':authority': authority });
        stream.once('response', (headers) => resolve(Number(headers[':status'])));
        stream.resume();
        stream.once('error', reject);
      });
    assert.equal(await status('enabled'), 200);
    assert.equal(await status('disabled'), 421);
  });
});
