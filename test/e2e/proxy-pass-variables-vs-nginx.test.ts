/**
 * `proxy_pass` with variables, side by side with Debian's nginx: the URL's prefix is checked once
 * it is evaluated (`http:/$uri` is fine when $uri starts with a slash; an evaluated URL without
 * `http://` is a 500), and an evaluated `unix:/path:/uri` is a unix socket reached without a
 * resolver (ngx_http_proxy_eval() and ngx_parse_url()).
 */
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

describe('proxy_pass with variables: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let socket = '';
  const upstream = http.createServer((req, res) => res.end(`uri=${req.url ?? ''} host=${req.headers.host ?? '(none)'}`));

  before(async () => {
    pair = await startPair(
      (port) => `events {}
http {
    access_log off;
    upstream backend { server unix:${socket}; }
    server {
        listen 127.0.0.1:${port};
        location /var { proxy_pass http://$arg_to; }
        location /backend/ { proxy_pass http:/$uri; }
        location /bad { proxy_pass $arg_to; }
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

  const both = async (path: string): Promise<{ status: number; body: string }[]> => {
    const answers = [];
    for (const port of [pair.ports.hitless, pair.ports.nginx]) {
      const answer = await fetchRaw(port, path);
      answers.push({ status: answer.status, body: answer.status === 200 ? answer.body : '' });
    }
    return answers;
  };

  it('reaches a unix socket an evaluated URL names, its URI after the path', async () => {
    for (const uri of ['/', '/x?y=1', '']) {
      const [ours, theirs] = await both(`/var?to=unix:${socket}:${uri}`);
      assert.equal(theirs?.status, 200, `nginx itself for "${uri}"`);
      assert.deepEqual(ours, theirs, uri);
    }
  });

  it('takes http:/$uri as the URL http://backend/..., and sends the host as evaluated', async () => {
    const [ours, theirs] = await both('/backend/page');
    assert.deepEqual(theirs, { status: 200, body: 'uri=/page host=backend' }, 'nginx itself');
    assert.deepEqual(ours, theirs);
  });

  it('answers 500 for an evaluated URL without http:// or https://', async () => {
    for (const to of ['ftp://x', 'http:/', 'backend']) {
      const [ours, theirs] = await both(`/bad?to=${encodeURIComponent(to)}`);
      assert.equal(theirs?.status, 500, `nginx itself for "${to}"`);
      assert.deepEqual(ours, theirs, to);
    }
  });
});
