/**
 * `sticky cookie` with real upstreams: the first response names its peer, later requests stay on
 * it, a `drain` peer keeps its bound clients and gets no new one, and the clients of a dead or
 * down peer move and get a new cookie.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
      `http { upstream u {
          sticky cookie srv_id expires=1h path=/ httponly;
          server 127.0.0.1:${a.port};
          server 127.0.0.1:${b.port};
          server 127.0.0.1:${drained.port} drain;
          server 127.0.0.1:${downPort} down;
        }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; } } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    for (const backend of [a, b, drained]) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const withCookie = (id: string): Promise<Reply> => get(served.port, '/', { headers: { cookie: `other=1; srv_id=${id}` } });

  it('names the peer that answered in the first response, and keeps the client on it', async () => {
    const first = await get(served.port, '/');
    const peer = byName().get(first.body) as Backend;
    assert.ok(peer === a || peer === b, `a new client went to ${first.body}`);
    assert.equal(setCookie(first), `srv_id=${idOf(peer.port)}; expires=${setCookie(first)?.match(/expires=([^;]+)/)?.[1] ?? ''}; max-age=3600; path=/; httponly`);
    for (let i = 0; i < 10; i++) {
      const reply = await withCookie(idOf(peer.port));
      assert.equal(reply.body, peer.name);
      assert.equal(setCookie(reply), undefined, 'a bound client gets no new cookie');
    }
  });

  it('gives a drain peer no new client, and keeps its bound ones on it', async () => {
    for (let i = 0; i < 20; i++) assert.notEqual((await get(served.port, '/')).body, 'drained');
    for (let i = 0; i < 5; i++) {
      const reply = await withCookie(idOf(drained.port));
      assert.equal(reply.body, 'drained');
      assert.equal(setCookie(reply), undefined);
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

describe('sticky in the configuration', () => {
  it('takes NGINX Plus\'s cookie syntax and refuses the rest', () => {
    load('http { upstream u { sticky cookie srv_id; server 127.0.0.1:1; } }');
    load('http { upstream u { least_conn; sticky cookie s expires=max domain=.example.com path=/ samesite=lax secure httponly; server 127.0.0.1:1 drain; } }');
    assert.equal(errorOf('http { upstream u { sticky route $a; server 127.0.0.1:1; } }'), 'invalid parameter "route" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { sticky cookie s expires=soon; server 127.0.0.1:1; } }'), 'invalid parameter "expires=soon" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { sticky cookie s samesite=maybe; server 127.0.0.1:1; } }'), 'invalid parameter "samesite=maybe" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { sticky cookie; server 127.0.0.1:1; } }'), 'invalid number of arguments in "sticky" directive in /x.conf:1');
  });
});
