import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { errorOf, get, load, serve, type Served } from './helpers.js';
import { h2connect, h2request } from './h2-client.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';
import { VERSION } from '../../src/core/version.js';

describe('HTTP/2 over cleartext (h2c, prior knowledge)', () => {
  let app: Upstream;
  let served: Served;
  let viaDirective: Served;
  const sessions: ClientHttp2Session[] = [];

  const session = async (port: number): Promise<ClientHttp2Session> => {
    const s = await h2connect(port);
    sessions.push(s);
    return s;
  };

  before(async () => {
    app = await httpUpstream((req, res, body) => {
      if (req.url === '/app/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain', connection: 'keep-alive' });
        res.write('part one, ');
        setTimeout(() => res.end('part two'), 5);
        return;
      }
      const json = JSON.stringify({ method: req.method, url: req.url, body, host: req.headers.host, cookie: req.headers.cookie });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'set-cookie': ['a=1', 'b=2'] });
      res.end(json);
    });
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:8080 http2;
          client_max_body_size 16;
          location / { add_header X-Proto $server_protocol; return 200 "$request|$host|$connection_requests"; }
          location /close { return 444; }
          location /app/ { proxy_pass http://127.0.0.1:${app.port}; proxy_http_version 1.1; proxy_set_header Host $host; }
        }
      }`,
      '/srv/hitless',
    );
    viaDirective = await serve(`http { access_log off; http2 on; server { listen 127.0.0.1:8081; location / { return 200 "directive $server_protocol"; } } }`, '/srv/hitless');
  });

  after(async () => {
    for (const s of sessions) s.destroy();
    await served.stop();
    await viaDirective.stop();
    await app.stop();
  });

  it('accepts http2 on|off in http and server, and refuses other values', () => {
    assert.equal(load('http { http2 on; server { http2 off; } }').main.child('http')?.get('http2'), true);
    assert.match(errorOf('http { http2 yes; }'), /invalid value "yes" in "http2" directive, it must be "on" or "off"/);
    assert.match(errorOf('http { server { location / { http2 on; } } }'), /"http2" directive is not allowed here/);
  });

  it('serves a return over HTTP/2, with add_header and HTTP/2.0 as $server_protocol and in $request', async () => {
    const s = await session(served.port);
    const reply = await h2request(s, '/one?x=1');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'GET /one?x=1 HTTP/2.0|localhost|1');
    assert.equal(reply.headers['x-proto'], 'HTTP/2.0');
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.headers['content-length'], String(reply.body.length));
    assert.equal(reply.headers.server, `hitless/${VERSION}`);
    assert.equal(reply.headers.connection, undefined);
    assert.equal((await h2request(s, '/two')).body, 'GET /two HTTP/2.0|localhost|2');
  });

  it('turns HTTP/2 on with the http2 directive as well as with listen ... http2', async () => {
    const s = await session(viaDirective.port);
    assert.equal((await h2request(s, '/')).body, 'directive HTTP/2.0');
  });

  it('still serves HTTP/1.1 on the same port: the connection preface decides', async () => {
    const reply = await get(served.port, '/h1');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'GET /h1 HTTP/1.1|localhost|1');
    assert.equal((await get(viaDirective.port, '/')).body, 'directive HTTP/1.1');
  });

  it('proxies to an HTTP/1 upstream: :authority as Host, cookies joined, repeated response fields kept', async () => {
    const s = await session(served.port);
    const reply = await h2request(s, '/app/json', { headers: { cookie: ['x=1', 'y=2'] } });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body) as Record<string, string>;
    assert.deepEqual(seen, { method: 'GET', url: '/app/json', body: '', host: 'localhost', cookie: 'x=1; y=2' });
    assert.deepEqual(reply.headers['set-cookie'], ['a=1', 'b=2']);
  });

  it('de-chunks a chunked upstream response: HTTP/2 frames the body itself', async () => {
    const s = await session(served.port);
    const reply = await h2request(s, '/app/chunked');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'part one, part two');
    assert.equal(reply.headers['transfer-encoding'], undefined);
    assert.equal(reply.headers.connection, undefined);
  });

  it('passes a POST body upstream, and answers 413 to one over client_max_body_size', async () => {
    const s = await session(served.port);
    const reply = await h2request(s, '/app/post', { method: 'POST', body: 'name=value' });
    assert.deepEqual(JSON.parse(reply.body), { method: 'POST', url: '/app/post', body: 'name=value', host: 'localhost' });
    const big = await h2request(s, '/app/post', { method: 'POST', body: 'x'.repeat(1000) });
    assert.equal(big.status, 413);
    // The session is still usable.
    assert.equal((await h2request(s, '/after')).status, 200);
  });

  it('resets only the stream of a return 444; the session goes on', async () => {
    const s = await session(served.port);
    await assert.rejects(h2request(s, '/close'));
    assert.equal((await h2request(s, '/still')).status, 200);
    assert.equal(s.destroyed, false);
  });

  it('serves many concurrent streams on one session', async () => {
    const s = await session(served.port);
    const count = 300;
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => h2request(s, i % 2 === 0 ? `/r${i}` : `/app/r${i}`)));
    assert.equal(replies.filter((r) => r.status === 200).length, count);
    assert.equal(replies.filter((r, i) => i % 2 === 0 && r.body.startsWith(`GET /r${i} HTTP/2.0|`)).length, count / 2);
  });
});
