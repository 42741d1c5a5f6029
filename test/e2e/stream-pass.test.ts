/**
 * Stream `pass` (ngx_stream_pass_module, nginx 1.25.5; Debian's nginx 1.22 has none, so hitless
 * runs alone against what nginx's source and nginx-tests' stream_pass.t say): a connection
 * handed, as accepted, to an http listener of the same configuration, plain or TLS, by the SNI
 * name ssl_preread read (the ClientHello put back), from a terminated TLS session (the decrypted
 * stream), or to a value's address; $server_port is the address passed to; a passed session
 * writes no stream log line; a TLS session that read preread data, a bad value and a port nobody
 * listens on are refused with nginx's messages and statuses.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../deploy/helpers/nginx.js';
import { readToClose, startHitlessIn } from './helpers/side-by-side.js';
import { waitFor } from './helpers/masters.js';

const TLS = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/** One HTTP/1.0 request on a connection `open` makes, and all that came back before the close. */
function exchange(open: () => Socket): Promise<string> {
  return readToClose(open, 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n');
}

describe('stream pass', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-pass-'));
  const ports: Record<string, number> = {};
  let stop: (() => Promise<void>) | undefined;

  before(async () => {
    for (const name of ['preread', 'tls', 'value', 'nobody', 'bad', 'plain', 'https']) ports[name] = await freePort();
    const unused = await freePort();
    writeFileSync(join(dir, 'hitless.conf'), `events {}
stream {
    log_format st "$server_port $status";
    access_log ${join(dir, 'stream.log')} st;
    server {
        listen 127.0.0.1:${ports['preread']};
        listen 127.0.0.1:${ports['tls']} ssl;
        server_name default;
        ssl_preread on;
        ssl_certificate ${TLS}a-rsa.crt;
        ssl_certificate_key ${TLS}a-rsa.key;
        pass 127.0.0.1:${ports['plain']};
    }
    server { listen 127.0.0.1:${ports['preread']}; server_name sni.test; pass 127.0.0.1:${ports['https']}; }
    server { listen 127.0.0.1:${ports['tls']} ssl; server_name sni.test; pass 127.0.0.1:${ports['plain']}; }
    geo $target { default 127.0.0.1:${ports['plain']}; }
    server { listen 127.0.0.1:${ports['value']}; pass $target; }
    server { listen 127.0.0.1:${ports['nobody']}; pass 127.0.0.1:${unused}; }
    map 0 $name { default "localhost:80"; }
    server { listen 127.0.0.1:${ports['bad']}; pass $name; }
}
http {
    access_log off;
    server { listen 127.0.0.1:${ports['plain']}; location / { return 200 "plain $server_port\\n"; } }
    server {
        listen 127.0.0.1:${ports['https']} ssl;
        ssl_certificate ${TLS}a-rsa.crt;
        ssl_certificate_key ${TLS}a-rsa.key;
        location / { return 200 "https $ssl_server_name $server_port\\n"; }
    }
}
`);
    stop = await startHitlessIn(dir, join(dir, 'hitless.conf'), ports['plain'] ?? 0);
  });

  after(async () => {
    await stop?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const plain = (port: number) => () => connect({ port, host: '127.0.0.1' });
  const secure = (port: number, servername?: string) => () => tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) });

  it('passes a plain connection after ssl_preread read it (put back), and a ClientHello by its SNI name to an https listener', async () => {
    assert.match(await exchange(plain(ports['preread'] ?? 0)), new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[^]*\\r\\n\\r\\nplain ${ports['plain']}\\n$`));
    assert.match(await exchange(secure(ports['preread'] ?? 0, 'sni.test')), new RegExp(`\\r\\n\\r\\nhttps sni\\.test ${ports['https']}\\n$`));
  });

  it('passes the decrypted stream of a terminated TLS session; refuses one that read preread data (500)', async () => {
    assert.match(await exchange(secure(ports['tls'] ?? 0, 'sni.test')), new RegExp(`\\r\\n\\r\\nplain ${ports['plain']}\\n$`));
    assert.equal(await exchange(secure(ports['tls'] ?? 0)), '');
  });

  it('passes to the address a value gives; a name (nothing is resolved) is 500, a port nobody listens on 200', async () => {
    assert.match(await exchange(plain(ports['value'] ?? 0)), new RegExp(`\\r\\n\\r\\nplain ${ports['plain']}\\n$`));
    assert.equal(await exchange(plain(ports['bad'] ?? 0)), '');
    assert.equal(await exchange(plain(ports['nobody'] ?? 0)), '');
    const errors = await waitFor('the error lines', () => {
      const text = readFileSync(join(dir, 'error.log'), 'latin1');
      return /port not found for/.test(text) ? text : undefined;
    });
    assert.match(errors, /\[error\] .*cannot pass connection with preread data while passing connection to port, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/);
    assert.match(errors, /\[error\] .*no addresses in pass "localhost:80" while passing connection to port/);
    assert.match(errors, /\[error\] .*port not found for "127\.0\.0\.1:\d+" while passing connection to port/);
  });

  it('logs only the sessions that were not passed', async () => {
    await stop?.();
    stop = undefined;
    const lines = readFileSync(join(dir, 'stream.log'), 'latin1').trim().split('\n').sort();
    assert.deepEqual(lines, [`${ports['bad']} 500`, `${ports['nobody']} 200`, `${ports['tls']} 500`].sort());
  });
});
