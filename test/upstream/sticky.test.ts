/**
 * nginx's `sticky` (ngx_http_upstream_sticky_module) with real upstreams, straight against its
 * source since Debian's nginx 1.22 has no sticky: `cookie` names the peer that answered in every
 * response, in nginx's field order, and keeps the client on it; `drain` keeps bound clients only;
 * `route` takes the first non-empty variable as the server's `route=`, among the backups only
 * once no primary is left; `learn` maps a session the response created to the peer that answered;
 * and the configuration errors nginx gives.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chargeRoundRobin, pickRoundRobin } from '../../src/upstream/balancers/round-robin.js';
import { cookieTime } from '../../src/upstream/balancers/sticky.js';
import { Peer } from '../../src/upstream/peer.js';
import { LearnedSessions, MasterStickySessions, StickySessions, type StickyLearnMessage } from '../../src/upstream/sticky-sessions.js';
import { clientSession, grpcCall, grpcPeer, type GrpcPeer } from '../http/grpc-peers.js';
import { errorOf, get, load, serve, type Reply, type Served } from '../http/helpers.js';
import { closedPort } from '../http/proxy-upstreams.js';
import { startBackend, type Backend } from './backends.js';

const idOf = (port: number): string => createHash('md5').update(`127.0.0.1:${port}`).digest('hex');
const setCookie = (reply: Reply): string | undefined => reply.headers['set-cookie']?.[0];

describe('sticky cookie', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-sticky-'));
  let a: Backend;
  let b: Backend;
  let drained: Backend;
  let downPort = 0;
  let served: Served;
  const byName = (): Map<string, Backend> => new Map([a, b, drained].map((backend) => [backend.name, backend]));

  before(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    drained = await startBackend('drained');
    downPort = await closedPort();
    served = await serve(
      `http {
        map $arg_s $samesite { default $arg_s; }
        upstream u {
          sticky cookie srv_id expires=1h path=/ httponly;
          server 127.0.0.1:${a.port};
          server 127.0.0.1:${b.port};
          server 127.0.0.1:${drained.port} drain;
          server 127.0.0.1:${downPort} down;
        }
        upstream fields {
          sticky cookie s "expires=1h 3m" domain=$arg_d samesite=$samesite secure httponly path=/p;
          server 127.0.0.1:${a.port};
        }
        upstream forever {
          sticky cookie s expires=max;
          server 127.0.0.1:${a.port};
        }
        upstream dead {
          sticky cookie s;
          server 127.0.0.1:${a.port} down;
        }
        server {
          listen 127.0.0.1:8080;
          location / { proxy_pass http://u; }
          location /fields { proxy_pass http://fields; }
          location /forever { proxy_pass http://forever; }
          location /dead { proxy_pass http://dead; }
        } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    for (const backend of [a, b, drained]) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const withCookie = (id: string, path = '/'): Promise<Reply> => get(served.port, path, { headers: { cookie: `other=1; srv_id=${id}` } });

  it('names the peer that answered in every response, and keeps the client on it', async () => {
    const first = await get(served.port, '/');
    const peer = byName().get(first.body) as Backend;
    assert.ok(peer === a || peer === b, `a new client went to ${first.body}`);
    const expires = /expires=([^;]+)/.exec(setCookie(first) ?? '')?.[1] ?? '';
    assert.match(expires, /^[A-Z][a-z]{2}, \d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d GMT$/, 'ngx_http_cookie_time() format');
    assert.equal(setCookie(first), `srv_id=${idOf(peer.port)}; expires=${expires}; max-age=3600; httponly; path=/`);
    for (let i = 0; i < 10; i++) {
      const reply = await withCookie(idOf(peer.port));
      assert.equal(reply.body, peer.name);
      assert.equal(setCookie(reply)?.split(';')[0], `srv_id=${idOf(peer.port)}`, 'nginx sets the cookie on every response');
    }
  });

  it('writes the fields in nginx\'s order, domain and samesite from variables', async () => {
    const cookie = setCookie(await get(served.port, '/fields?d=example.com&s=lax'));
    const expires = /expires=([^;]+)/.exec(cookie ?? '')?.[1] ?? '';
    assert.equal(cookie, `s=${idOf(a.port)}; expires=${expires}; max-age=3780; domain=example.com; httponly; secure; samesite=lax; path=/p`);
    // An empty domain is left out; a samesite that is none of the three is sent as strict.
    const wrong = setCookie(await get(served.port, '/fields?s=wrong')) ?? '';
    assert.equal(wrong.replace(/expires=[^;]+/, 'expires=X'), `s=${idOf(a.port)}; expires=X; max-age=3780; httponly; secure; samesite=strict; path=/p`);
    assert.doesNotMatch(setCookie(await get(served.port, '/fields')) ?? '', /samesite/, 'an empty samesite is left out');
    assert.equal(setCookie(await get(served.port, '/forever')), `s=${idOf(a.port)}; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000`);
  });

  it('sets no cookie when no peer answered', async () => {
    const reply = await get(served.port, '/dead', { headers: { cookie: `s=${idOf(a.port)}` } });
    assert.equal(reply.status, 502);
    assert.equal(setCookie(reply), undefined);
  });

  it('gives a drain peer no new client, and keeps its bound ones on it', async () => {
    for (let i = 0; i < 20; i++) assert.notEqual((await get(served.port, '/')).body, 'drained');
    for (let i = 0; i < 5; i++) {
      const reply = await withCookie(idOf(drained.port));
      assert.equal(reply.body, 'drained');
      assert.equal(setCookie(reply)?.split(';')[0], `srv_id=${idOf(drained.port)}`);
    }
    const states = served.runtime.upstreamStates();
    assert.equal(states.find((state) => state.peer === `127.0.0.1:${drained.port}`)?.state, 'draining');
  });

  it('moves the clients of a down peer, and of a peer that died, with a new cookie', async () => {
    const moved = await withCookie(idOf(downPort));
    assert.ok(moved.body === 'a' || moved.body === 'b', moved.body);
    assert.equal(setCookie(moved)?.split(';')[0], `srv_id=${idOf((byName().get(moved.body) as Backend).port)}`);
    // A cookie that names no peer of the group is a new client.
    const unknown = await withCookie('0123456789abcdef0123456789abcdef');
    assert.ok(unknown.body === 'a' || unknown.body === 'b');
    assert.ok(setCookie(unknown)?.startsWith('srv_id='));

    await a.stop();
    for (let i = 0; i < 3; i++) {
      const reply = await withCookie(idOf(a.port));
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'b', 'never to the dead peer, never to the drain one');
      assert.equal(setCookie(reply)?.split(';')[0], `srv_id=${idOf(b.port)}`);
    }
  });
});

describe('sticky route', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-sticky-route-'));
  const backends: Backend[] = [];
  let deadPort = 0;
  let served: Served;

  before(async () => {
    for (const name of ['r0', 'r1', 'r2', 'r3']) backends.push(await startBackend(name));
    deadPort = await closedPort();
    const [r0, r1, r2, r3] = backends.map((backend) => backend.port);
    served = await serve(
      `http {
        upstream u {
          server 127.0.0.1:${r0} route=a;
          server 127.0.0.1:${r1} route=b;
          server 127.0.0.1:${r2};
          sticky route $cookie_route $arg_route;
        }
        upstream alive {
          server 127.0.0.1:${r0};
          server 127.0.0.1:${r1};
          server 127.0.0.1:${r3} backup route=c;
          sticky route $arg_route;
        }
        upstream gone {
          server 127.0.0.1:${deadPort};
          server 127.0.0.1:${r3} backup route=c;
          server 127.0.0.1:${r2} backup;
          sticky route $arg_route;
        }
        server {
          listen 127.0.0.1:8080;
          location / { proxy_pass http://u; }
          location /alive { proxy_pass http://alive; }
          location /gone { proxy_pass http://gone; }
        } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    for (const backend of backends) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a request to the server its first non-empty variable names', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/?route=b')).body, 'r1');
    // The cookie comes first; an empty one counts as absent.
    assert.equal((await get(served.port, '/?route=b', { headers: { cookie: 'route=a' } })).body, 'r0');
    assert.equal((await get(served.port, '/?route=b', { headers: { cookie: 'route=' } })).body, 'r1');
    // A server without route= has the MD5 of its address as its ID.
    assert.equal((await get(served.port, `/?route=${idOf(backends[2]?.port ?? 0)}`)).body, 'r2');
    // No cookie is set in route mode.
    assert.equal(setCookie(await get(served.port, '/?route=a')), undefined);
  });

  it('balances a request whose route names no server', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await get(served.port, '/?route=zz')).body);
    assert.deepEqual([...seen].sort(), ['r0', 'r1', 'r2']);
  });

  it('reaches a backup by its route only once no primary is left', async () => {
    for (let i = 0; i < 4; i++) assert.notEqual((await get(served.port, '/alive?route=c')).body, 'r3');
    for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/gone?route=c')).body, 'r3');
  });
});

describe('sticky learn', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-sticky-learn-'));
  const upstreams: Server[] = [];
  const ports: number[] = [];
  let served: Served;

  before(async () => {
    for (const name of ['l0', 'l1']) {
      // Each upstream hands out a session of its own name, and says who it is.
      const server = createServer((req, res) => {
        res.setHeader('x-port', name);
        if (!req.url?.includes('quiet')) res.setHeader('set-cookie', `sid=${name}-session`);
        res.end(name);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      upstreams.push(server);
      ports.push((server.address() as AddressInfo).port);
    }
    served = await serve(
      `http {
        upstream u {
          server 127.0.0.1:${ports[0] ?? 0};
          server 127.0.0.1:${ports[1] ?? 0};
          sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=s:1m;
        }
        upstream client {
          server 127.0.0.1:${ports[0] ?? 0};
          server 127.0.0.1:${ports[1] ?? 0};
          sticky learn create=$cookie_sid lookup=$cookie_sid zone=c:1m header;
        }
        server {
          listen 127.0.0.1:8080;
          location / { proxy_pass http://u; }
          location /client { proxy_pass http://client; }
        } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    for (const server of upstreams) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a session the upstream created to the upstream that created it', async () => {
    // Round robin: the first two requests create one session at each upstream.
    const created = [(await get(served.port, '/')).body, (await get(served.port, '/')).body];
    assert.deepEqual(created.sort(), ['l0', 'l1']);
    for (const name of ['l0', 'l1']) {
      for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/quiet', { headers: { cookie: `sid=${name}-session` } })).body, name);
    }
    // A session nobody created is balanced.
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await get(served.port, '/quiet', { headers: { cookie: 'sid=unknown' } })).body);
    assert.equal(seen.size, 2);
  });

  it('learns a session the client brings, from the first server that answered it', async () => {
    const first = (await get(served.port, '/client', { headers: { cookie: 'sid=mine' } })).body;
    for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/client', { headers: { cookie: 'sid=mine' } })).body, first);
  });

  it('forgets a session unused for the timeout, oldest first when the zone is full', () => {
    const sessions = new LearnedSessions(1_000, 32_768);
    sessions.learn('a', 'sid-a', true, 0);
    sessions.learn('b', 'sid-b', false, 0);
    assert.equal(sessions.lookup('b', 10), undefined, 'lookup alone creates no session');
    assert.equal(sessions.lookup('a', 999), 'sid-a');
    sessions.learn('a', 'sid-a2', false, 500);
    assert.equal(sessions.lookup('a', 1_499), 'sid-a2', 'learning again refreshes and rebinds');
    assert.equal(sessions.lookup('a', 1_500), undefined);
    const small = new LearnedSessions(60_000, 8 * 131);
    for (let i = 0; i < 9; i++) small.learn(`s${i}`, 'x', true, i);
    assert.equal(small.size, 8);
    assert.equal(small.lookup('s0', 10), undefined, 'the least recently learned went');
    assert.equal(small.lookup('s8', 10), 'x');
  });
});

describe('sticky cookie over grpc_pass', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-sticky-grpc-'));
  const peers: GrpcPeer[] = [];
  let served: Served;

  before(async () => {
    for (let i = 0; i < 2; i++) peers.push(await grpcPeer());
    served = await serve(
      `http { upstream g { sticky cookie srv; ${peers.map((peer) => `server 127.0.0.1:${peer.port};`).join(' ')} }
        server { listen 127.0.0.1:8080 http2; location / { grpc_pass grpc://g; } } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    for (const peer of peers) await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('names the peer that answered a call, and keeps the calls with the cookie on it', async () => {
    const session = await clientSession(served.port);
    try {
      const first = await grpcCall(session, '/svc/Method');
      const cookie = String(first.headers['set-cookie'] ?? '');
      const hit = peers.findIndex((peer) => peer.streams.length === 1);
      assert.equal(cookie, `srv=${idOf(peers[hit]?.port ?? 0)}`);
      for (let i = 0; i < 4; i++) {
        const reply = await grpcCall(session, '/svc/Method', 'hi', { cookie });
        assert.equal(String(reply.headers['set-cookie'] ?? ''), cookie);
      }
      assert.deepEqual(peers.map((peer) => peer.streams.length), peers.map((_, i) => (i === hit ? 5 : 0)));
    } finally {
      session.destroy();
    }
  });
});

describe('sticky over round robin', () => {
  it('charges a sticky peer in the round, so that new requests make up for sticky ones', () => {
    const peers = ['a', 'b', 'c', 'd'].map((name, i) => new Peer({ name, address: { kind: 'tcp', host: '127.0.0.1', port: i + 1 }, server: name, weight: 1, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false }));
    const a = peers[0] as Peer;
    // ngx_http_upstream_get_peer(): the first sticky request charges a; the next ones find it at
    // the low limit (-(total - weight)) and leave the weights alone.
    for (let i = 0; i < 5; i++) chargeRoundRobin(peers, a, 4, new Set(), 0);
    assert.deepEqual(peers.map((peer) => peer.currentWeight), [-3, 1, 1, 1]);
    const next = Array.from({ length: 4 }, () => pickRoundRobin(peers, new Set(), 0)?.name);
    assert.deepEqual(next, ['b', 'c', 'd', 'a']);
  });
});

describe('sticky learn sessions between workers and the master', () => {
  it('sends what a worker learns to the master, which hands it to every worker, and a snapshot to a new one', () => {
    const spec = { zone: 'z', group: 'u', zoneSize: 1 << 20, timeoutMs: 60_000 };
    const sent: StickyLearnMessage[] = [];
    const [one, two] = [new StickySessions(), new StickySessions()];
    one.useSender((message) => sent.push(message));
    const master = new MasterStickySessions();
    one.learn(spec, 'unknown', 'sid-x', false, 1);
    assert.equal(sent.length, 0, 'a refresh of a session the worker does not know goes nowhere');
    one.learn(spec, 'abc', 'sid-a', true, 2);
    assert.equal(sent.length, 1);
    assert.equal(one.lookup(spec, 'abc', 3), 'sid-a', 'the worker that learned knows at once');
    assert.equal(two.lookup(spec, 'abc', 3), undefined);
    const update = master.apply(sent[0] as StickyLearnMessage);
    assert.ok(update !== undefined);
    two.receive(update);
    assert.equal(two.lookup(spec, 'abc', 3), 'sid-a');
    const fresh = new StickySessions();
    fresh.receive(master.snapshot());
    assert.equal(fresh.lookup(spec, 'abc', 3), 'sid-a', 'a new worker starts with the master\'s copy');
    // A zone taken over by another group starts empty, as nginx refuses to reuse it.
    assert.equal(fresh.lookup({ ...spec, group: 'v' }, 'abc', 3), undefined);
  });
});

describe('sticky in the configuration', () => {
  it('takes nginx\'s three forms and refuses the rest with its messages', () => {
    load('http { upstream u { sticky cookie srv_id; server 127.0.0.1:1; } }');
    load('http { upstream u { least_conn; sticky cookie s expires=max domain=.example.com path=/ samesite=Lax secure httponly; server 127.0.0.1:1 drain; } }');
    load('http { upstream u { sticky route $cookie_a $arg_b; server 127.0.0.1:1 route=a; } }');
    load('http { upstream u { sticky learn create=$upstream_cookie_s lookup=$cookie_s zone=z:1m timeout=1h header; server 127.0.0.1:1; } }');
    const fails = (sticky: string): string => errorOf(`http { upstream u { sticky ${sticky}; server 127.0.0.1:1; } }`);
    assert.equal(fails('hash $a'), 'unknown parameter "hash" in /x.conf:1');
    assert.equal(fails('route a'), 'invalid variable name "a" in /x.conf:1');
    assert.equal(fails('route $nope'), 'unknown "nope" variable');
    assert.equal(fails('cookie s expires=soon'), '"sticky" directive invalid "expires" parameter value in /x.conf:1');
    assert.equal(fails('cookie s samesite=maybe'), '"sticky" directive invalid "samesite" parameter value in /x.conf:1');
    assert.equal(fails('cookie s path=/ path=/a'), '"sticky" directive parameter "path" is duplicate in /x.conf:1');
    assert.equal(fails('cookie s domain='), '"sticky" directive no value for "domain" in /x.conf:1');
    assert.equal(fails('cookie s max'), 'unknown parameter "max" in /x.conf:1');
    assert.equal(fails('cookie ""'), '"sticky" directive empty cookie name in /x.conf:1');
    assert.equal(fails('learn create=$cookie_s zone=z:1m'), '"sticky" directive "lookup" parameter is not specified in /x.conf:1');
    assert.equal(fails('learn lookup=$cookie_s zone=z:1m'), '"sticky" directive "create" parameter is not specified in /x.conf:1');
    assert.equal(fails('learn lookup=$cookie_s create=$cookie_s'), '"sticky" directive "zone" parameter is not specified in /x.conf:1');
    assert.equal(fails('learn lookup=cookie_s create=$cookie_s zone=z:1m'), '"sticky" directive missing variable in the "lookup" parameter in /x.conf:1');
    assert.equal(fails('learn lookup=$cookie_s create=$cookie_s zone=z:8k'), '"sticky" directive zone is too small in /x.conf:1');
    assert.equal(fails('learn lookup=$cookie_s create=$cookie_s zone=z'), '"sticky" directive zone size is not specified in /x.conf:1');
    assert.equal(fails('learn lookup=$cookie_s create=$cookie_s zone=z:1m timeout=0'), '"sticky" directive invalid timeout in /x.conf:1');
    assert.equal(errorOf('http { upstream u { sticky cookie; server 127.0.0.1:1; } }'), 'invalid number of arguments in "sticky" directive in /x.conf:1');
    assert.equal(
      errorOf('http { upstream u { sticky learn lookup=$cookie_s create=$cookie_s zone=z:1m; server 127.0.0.1:1; } upstream v { sticky learn lookup=$cookie_s create=$cookie_s zone=z:1m; server 127.0.0.1:1; } }'),
      'sticky zone "z" is already used in upstream "u" in /x.conf:1',
    );
  });

  it('takes route= and drain on an http server line only', () => {
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1 route=; } }'), 'route is empty in /x.conf:1');
    assert.equal(errorOf(`http { upstream u { server 127.0.0.1:1 route=${'x'.repeat(33)}; } }`), 'route is longer than 32 in /x.conf:1');
    load(`http { upstream u { server 127.0.0.1:1 route=${'x'.repeat(32)}; } }`);
    assert.equal(errorOf('stream { upstream u { server 127.0.0.1:1 route=a; } }'), 'invalid parameter "route=a" in /x.conf:1');
    assert.equal(errorOf('stream { upstream u { server 127.0.0.1:1 drain; } }'), 'invalid parameter "drain" in /x.conf:1');
  });

  it('formats cookie times as ngx_http_cookie_time() does', () => {
    assert.equal(cookieTime(Date.UTC(2013, 1, 28, 8, 50, 4)), 'Thu, 28-Feb-13 08:50:04 GMT');
    assert.equal(cookieTime(Date.UTC(2040, 0, 3, 0, 0, 0)), 'Tue, 03-Jan-2040 00:00:00 GMT');
  });
});
