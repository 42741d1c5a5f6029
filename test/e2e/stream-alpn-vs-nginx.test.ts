/**
 * Stream `ssl_alpn` and `$limit_conn_status`, side by side with Debian's nginx
 * (libnginx-mod-stream): hitless refused both (stream_ssl_alpn.t: unknown directive "ssl_alpn";
 * stream_limit_conn_dry_run.t: unknown "limit_conn_status" variable). The server's order of
 * preference chooses; a client that offers ALPN but none of the server's protocols fails the
 * handshake (ngx_stream_ssl_alpn_select()); a session without ALPN gets an empty variable.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/** The answer of a TLS session offering `alpn` (none when undefined), or `error` when the handshake failed. */
function ask(port: number, alpn?: string[]): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', () => resolve('error'));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('stream ssl_alpn and $limit_conn_status: hitless and nginx side by side', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair(
      (port, dir, extra) => `load_module ${STREAM_MODULE};
events {}
stream {
    ssl_certificate ${join(dir, 'a.crt')};
    ssl_certificate_key ${join(dir, 'a.key')};
    limit_conn_zone $binary_remote_addr zone=per_ip:1m;
    server { listen 127.0.0.1:${port} ssl; ssl_alpn first second; return "X $ssl_alpn_protocol X"; }
    server { listen 127.0.0.1:${extra[0] ?? 0}; limit_conn per_ip 10; return "[$limit_conn_status]"; }
    server { listen 127.0.0.1:${extra[1] ?? 0}; return "[$limit_conn_status]"; }
}
`,
      (dir) => {
        copyFileSync(join(fixtures, 'a-rsa.fullchain.crt'), join(dir, 'a.crt'));
        copyFileSync(join(fixtures, 'a-rsa.key'), join(dir, 'a.key'));
      },
      2,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  it('chooses by the server\'s order, answers without ALPN with an empty variable, and fails a handshake with no match', async () => {
    for (const alpn of [['first'], ['wrong', 'second', 'first'], ['wrong', 'second'], undefined, ['wrong']]) {
      const expected = await ask(pair.ports.nginx, alpn);
      const actual = await ask(pair.ports.hitless, alpn);
      assert.equal(actual, expected, `ALPN ${JSON.stringify(alpn)}`);
    }
    assert.equal(await ask(pair.ports.nginx, ['wrong', 'first']), 'X first X', 'nginx itself');
    assert.equal(await ask(pair.ports.nginx, ['wrong']), 'error', 'nginx itself');
  });

  it('$limit_conn_status is PASSED under a limit, and empty without one', async () => {
    const plain = (port: number): Promise<string> => new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });
    for (const index of [0, 1]) {
      const expected = await plain(pair.extra.nginx[index] ?? 0);
      assert.equal(await plain(pair.extra.hitless[index] ?? 0), expected);
    }
    assert.equal(await plain(pair.extra.nginx[0] ?? 0), '[PASSED]', 'nginx itself');
  });
});
