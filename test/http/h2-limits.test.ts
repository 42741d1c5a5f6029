import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { errorOf, load, serve, turns, type Served } from './helpers.js';
import { h2request, type H2Reply } from './h2-client.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

/** Opens an h2c session and waits for the server's SETTINGS. */
function settled(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
  });
}

/** Resolves with GOAWAY's error code and last stream id. */
function goawayOf(session: ClientHttp2Session): Promise<{ code: number; last: number }> {
  return new Promise((resolve) => session.once('goaway', (code, last) => resolve({ code, last })));
}

function closed(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => (session.closed || session.destroyed ? resolve() : session.once('close', () => resolve())));
}

/** Resolves once `stream` has closed, with its RST_STREAM code (0 when it ended normally). */
function streamClosed(stream: ClientHttp2Stream): Promise<number> {
  return new Promise((resolve) => stream.once('close', () => resolve(stream.rstCode ?? 0)));
}

describe('HTTP/2 connection limits: http2_max_concurrent_streams, keepalive_*, client_body_timeout, send_timeout', () => {
  let app: Upstream;
  let served: Served;
  const held: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const sessions: ClientHttp2Session[] = [];
  const big = Buffer.alloc(4 * 1024 * 1024, 'x');

  const port = (key: string): number => served.ports.get(key) ?? 0;
  const track = (session: ClientHttp2Session): ClientHttp2Session => {
    sessions.push(session);
    session.on('error', () => undefined);
    return session;
  };

  before(async () => {
    app = await httpUpstream((req, res, body) => {
      if (req.url?.startsWith('/hold/')) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        held.push(() => {
          inFlight--;
          res.end(`done ${req.url}`);
        });
        return;
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-length': big.length });
        res.end(big);
        return;
      }
      res.end(`got ${body.length}`);
    });
    const proxied = `proxy_pass http://127.0.0.1:${app.port}; proxy_http_version 1.1; proxy_set_header Connection "";`;
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:8080 http2;
          http2_max_concurrent_streams 2;
          location / { ${proxied} }
        }
        server {
          listen 127.0.0.1:8081 http2;
          keepalive_requests 3;
          location / { ${proxied} }
        }
        server {
          listen 127.0.0.1:8082 http2;
          keepalive_timeout 150ms;
          location / { return 200 "idle"; }
        }
        server {
          listen 127.0.0.1:8083 http2;
          keepalive_time 100ms;
          location / { return 200 "old"; }
        }
        server {
          listen 127.0.0.1:8084 http2;
          client_body_timeout 200ms;
          send_timeout 200ms;
          location / { ${proxied} }
        }
      }`,
      '/srv/hitless',
    );
  });

  after(async () => {
    for (const release of held.splice(0)) release();
    for (const s of sessions) s.destroy();
    await served?.stop();
    await app?.stop();
  });

  it('parses http2_max_concurrent_streams and keepalive_time in nginx\'s contexts, in nginx\'s words', () => {
    const http = load('http { http2_max_concurrent_streams 16; keepalive_time 10m; server { } }').main.child('http');
    assert.equal(http?.get('http2_max_concurrent_streams'), 16);
    assert.equal(http?.get('keepalive_time'), 600_000);
    assert.equal(load('http { }').main.child('http')?.get('http2_max_concurrent_streams'), 128);
    assert.match(errorOf('http { http2_max_concurrent_streams many; }'), /"http2_max_concurrent_streams" directive invalid number/);
    assert.match(errorOf('http { server { location / { http2_max_concurrent_streams 4; } } }'), /"http2_max_concurrent_streams" directive is not allowed here/);
    assert.match(errorOf('http { keepalive_time soon; }'), /"keepalive_time" directive invalid value/);
  });

  it('announces http2_max_concurrent_streams in SETTINGS; a node:http2 client queues streams over it and every one completes', async () => {
    const s = track(await settled(port('127.0.0.1:8080')));
    assert.equal(s.remoteSettings.maxConcurrentStreams, 2);
    maxInFlight = 0;
    const replies = Array.from({ length: 5 }, (_, i) => h2request(s, `/hold/${i}`));
    let released = 0;
    for (let round = 0; released < 5 && round < 50; round++) {
      while (held.length === 0) await turns();
      await turns(10); // room for a stream over the limit to arrive, were the client to send it
      assert.ok(held.length <= 2, `${held.length} streams reached the upstream at once`);
      for (const release of held.splice(0)) {
        release();
        released++;
      }
    }
    const done: H2Reply[] = await Promise.all(replies);
    assert.deepEqual(done.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(maxInFlight, 2);
  });

  it('keepalive_requests: the stream that reaches it is served, GOAWAY names it last, the session closes once all are done', async () => {
    const s = track(await settled(port('127.0.0.1:8081')));
    const goaway = goawayOf(s);
    const replies = [h2request(s, '/hold/a'), h2request(s, '/hold/b'), h2request(s, '/hold/c')];
    const { code, last } = await goaway;
    assert.equal(code, constants.NGHTTP2_NO_ERROR);
    assert.equal(last, 5, 'the third stream (id 5) is the last one taken');
    assert.throws(() => s.request({ ':path': '/fourth' }), { code: 'ERR_HTTP2_GOAWAY_SESSION' });
    while (held.length < 3) await turns();
    for (const release of held.splice(0)) release();
    const done = await Promise.all(replies);
    assert.deepEqual(done.map((r) => `${r.status} ${r.body}`), ['200 done /hold/a', '200 done /hold/b', '200 done /hold/c']);
    await closed(s);
  });

  it('keepalive_timeout: an idle session gets GOAWAY and is closed', async () => {
    const s = track(await settled(port('127.0.0.1:8082')));
    const goaway = goawayOf(s);
    assert.equal((await h2request(s, '/')).body, 'idle');
    assert.equal((await goaway).code, constants.NGHTTP2_NO_ERROR);
    await closed(s);
  });

  it('keepalive_time: a stream opened after the connection\'s lifetime is served, then GOAWAY closes the session', async () => {
    const s = track(await settled(port('127.0.0.1:8083')));
    const goaway = goawayOf(s);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal((await h2request(s, '/')).body, 'old');
    assert.equal((await goaway).code, constants.NGHTTP2_NO_ERROR);
    await closed(s);
  });

  it('client_body_timeout: a stream whose body stalls gets 408 and is closed; the session goes on', async () => {
    const s = track(await settled(port('127.0.0.1:8084')));
    const stream = s.request({ ':path': '/upload', ':method': 'POST', ':authority': 'localhost' }, { endStream: false });
    stream.write('part of a body');
    const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
    assert.equal(status, 408);
    stream.resume();
    assert.equal(await streamClosed(stream), constants.NGHTTP2_NO_ERROR);
    assert.equal(app.requests.filter((r) => r.url === '/upload').length, 0, 'nothing reached the upstream');
    assert.equal((await h2request(s, '/after', { method: 'POST', body: 'whole' })).body, 'got 5');
  });

  it('send_timeout: a stream whose response the client does not read is reset; the session goes on', async () => {
    const s = track(await settled(port('127.0.0.1:8084')));
    // Never read: node:http2 sends no WINDOW_UPDATE for it, so the stream's window stays shut.
    const stream = s.request({ ':path': '/big', ':authority': 'localhost' });
    stream.on('error', () => undefined); // the reset is the outcome under test
    assert.equal(await streamClosed(stream), constants.NGHTTP2_INTERNAL_ERROR);
    assert.equal((await h2request(s, '/after', { method: 'POST', body: 'abc' })).body, 'got 3');
  });
});
