/**
 * `proxy_pass http://unix:/path:` sends `Host: localhost`, as nginx's $proxy_host is for a unix
 * socket (ngx_http_proxy_set_vars()); side by side with Debian's nginx, through a node upstream
 * on a unix socket that echoes the Host it got.
 */
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

describe('proxy_pass to a unix socket: the Host sent, as nginx sends it', () => {
  let pair: NginxPair;
  const upstream = http.createServer((req, res) => res.end(`host=${req.headers.host ?? '(none)'}`));

  before(async () => {
    let socket = '';
    pair = await startPair(
      (port) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        location / { proxy_pass http://unix:${socket}:/; }
    }
}
`,
      (dir) => {
        socket = join(dir, 'upstream.sock');
      },
    );
    await new Promise<void>((resolve) => upstream.listen(socket, resolve));
    // nginx's workers run as nobody.
    chmodSync(socket, 0o777);
  });

  after(async () => {
    upstream.close();
    await pair?.stop();
  });

  it('GET / reaches the upstream with the Host nginx sends', async () => {
    const expected = await fetchRaw(pair.ports.nginx, '/');
    const actual = await fetchRaw(pair.ports.hitless, '/');
    assert.equal(expected.body, 'host=localhost', 'nginx itself');
    assert.equal(actual.body, expected.body);
  });
});
