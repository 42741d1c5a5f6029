/**
 * keepalive_timeout 0 and $connection_time over HTTP/2 (h2_keepalive.t). nginx awaits a
 * connection's first stream client_header_timeout (ngx_http_v2_init()) and keepalive_timeout only
 * between streams, so keepalive_timeout 0 serves one stream and then GOAWAY; hitless closed the
 * session before the first one. $connection_time counts from the connection, not the stream.
 */
import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { setTimeout as wait } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from './helpers.js';
import { h2connect, h2request } from './h2-client.js';

describe('HTTP/2 keepalive_timeout 0 and $connection_time', () => {
  let served: Served;
  const sessions: ClientHttp2Session[] = [];
  const open = async (key: string): Promise<ClientHttp2Session> => {
    const session = await h2connect(served.ports.get(key) ?? 0);
    session.on('error', () => undefined);
    sessions.push(session);
    return session;
  };

  before(async () => {
    served = await serve(
      `http {
        access_log off;
        server { listen 127.0.0.1:8080 http2; keepalive_timeout 0; location / { return 200 one; } }
        server { listen 127.0.0.1:8081 http2; add_header X-Conn $connection_requests:$connection_time; location / { return 200 two; } }
      }`,
      '/tmp/',
    );
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await served?.stop();
  });

  it('keepalive_timeout 0 serves the first stream, then GOAWAY', async () => {
    const session = await open('127.0.0.1:8080');
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    // As h2_keepalive.t does, the stream comes a moment after the connection: nothing waits for 0 ms.
    await wait(100);
    const reply = await h2request(session, '/');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'one');
    assert.equal(await goaway, 0);
  });

  it('$connection_time of a later stream counts from the connection', async () => {
    const session = await open('127.0.0.1:8081');
    const first = await h2request(session, '/');
    assert.match(String(first.headers['x-conn']), /^1:0\.\d{3}$/);
    await wait(300);
    const second = await h2request(session, '/');
    const [requests, seconds] = String(second.headers['x-conn']).split(':');
    assert.equal(requests, '2');
    assert.ok(Number(seconds) >= 0.3, `$connection_time ${seconds}`);
  });
});
