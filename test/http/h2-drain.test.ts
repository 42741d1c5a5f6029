import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { HttpRuntime } from '../../src/http/runtime.js';
import { load, turns } from './helpers.js';
import { h2connect, h2request, type H2Reply } from './h2-client.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

describe('HttpRuntime.drain over HTTP/2: GOAWAY, in-flight streams finish, zero failed requests', () => {
  let server: Server;
  let port = 0;
  let app: Upstream;
  const held: (() => void)[] = [];
  const runtimes: HttpRuntime[] = [];
  const sessions: ClientHttp2Session[] = [];

  const start = (body: string): HttpRuntime => {
    const config = `http { access_log off; server { listen 127.0.0.1:8080 http2;
      location / { return 200 "${body}"; }
      location /slow { proxy_pass http://127.0.0.1:${app.port}; } } }`;
    const rt = new HttpRuntime(load(config), { log: new ErrorLog([]) });
    runtimes.push(rt);
    rt.attach('127.0.0.1:8080', server);
    return rt;
  };

  const session = async (): Promise<ClientHttp2Session> => {
    const s = await h2connect(port);
    sessions.push(s);
    return s;
  };

  before(async () => {
    app = await httpUpstream((_req, res) => {
      held.push(() => res.end('slow done'));
    });
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });

  after(async () => {
    for (const s of sessions) s.destroy();
    for (const rt of runtimes) rt.close();
    server.close();
    await app.stop();
  });

  it('finishes the streams in flight, sends GOAWAY, and a new session reaches the new generation', async () => {
    const old = start('old');
    const s1 = await session();
    assert.equal((await h2request(s1, '/')).body, 'old');
    const goaway = new Promise<{ code: number; last: number }>((resolve) => s1.once('goaway', (code, last) => resolve({ code, last })));
    const inFlight = [h2request(s1, '/slow/1'), h2request(s1, '/slow/2'), h2request(s1, '/slow/3')];
    while (app.requests.length < 3) await turns();

    // The reload: the old generation stops accepting and drains, the new one takes the listening socket.
    const drained = old.drain({ graceMs: 60_000 });
    const next = start('new');

    const { code, last } = await goaway;
    assert.equal(code, 0, 'GOAWAY with NO_ERROR');
    assert.equal(last, 7, 'the last stream the old generation took');
    // A client does not open streams on a session that got GOAWAY: it opens a new session.
    assert.throws(() => s1.request({ ':path': '/refused' }), { code: 'ERR_HTTP2_GOAWAY_SESSION' });
    const s2 = await session();
    const fresh = await h2request(s2, '/');
    assert.equal(fresh.body, 'new');

    for (const release of held.splice(0)) release();
    const done: H2Reply[] = await Promise.all(inFlight);
    assert.deepEqual(done.map((r) => `${r.status} ${r.body}`), ['200 slow done', '200 slow done', '200 slow done']);
    await drained;
    assert.equal(old.connections, 0);
    assert.equal(next.connections, 1);
  });

  it('sends GOAWAY to an idle session at once and closes it after the grace', async () => {
    const current = runtimes[runtimes.length - 1] as HttpRuntime;
    const s = await session();
    assert.equal((await h2request(s, '/')).body, 'new');
    const goaway = new Promise<number>((resolve) => s.once('goaway', (code) => resolve(code)));
    const drained = current.drain({ graceMs: 50 });
    assert.equal(await goaway, 0);
    await drained;
    assert.equal(current.connections, 0);
  });
});
