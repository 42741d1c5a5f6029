/**
 * `ssl_session_cache`: TLSv1.2 resumption by session ID (tickets off), as nginx's
 * ngx_ssl_session_cache() sets it up: `builtin` and `shared` resume, `off` and `none` do not; a
 * session expires after `ssl_session_timeout`; a session made under one client verification is not
 * resumed by a server with another (its session id context differs).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { after, describe, it } from 'node:test';
import { load, serve, type Served } from '../http/helpers.js';
import { SessionStore, sharedZoneSessions } from '../../src/tls/session-cache.js';
import { MasterSessionCaches } from '../../src/process/session-caches.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

interface Reply {
  readonly body: string;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** One TLSv1.2 request over a new connection, offering `session` when given. */
function get12(port: number, session?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let latest: Buffer | undefined;
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'a.test',
      ca: pem('ca.crt'),
      maxVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      ...(session === undefined ? {} : { session }),
    }, () => s.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'));
    let text = '';
    s.setEncoding('latin1');
    s.on('session', (data: Buffer) => (latest = data));
    s.on('data', (chunk: string) => (text += chunk));
    s.on('end', () => {
      const reused = s.isSessionReused();
      s.destroy();
      resolve({ body: text.slice(text.indexOf('\r\n\r\n') + 4), reused, session: latest });
    });
    s.on('error', reject);
  });
}

const conf = (cache: string, extra = ''): string => `http {
    access_log off;
    ssl_certificate a-rsa.fullchain.crt;
    ssl_certificate_key a-rsa.key;
    ssl_session_tickets off;
    ${cache}
    server {
        listen 127.0.0.1:1443 ssl;
        server_name a.test;
        return 200 "$ssl_session_reused";
    }
    ${extra}
}`;

/** A first connection's session, then whether offering it again resumes. */
async function resumes(port: number): Promise<{ first: Reply; again: Reply }> {
  const first = await get12(port);
  assert.equal(first.reused, false);
  assert.ok(first.session !== undefined, 'the server sent no session');
  return { first, again: await get12(port, first.session) };
}

describe('ssl_session_cache resumes TLSv1.2 sessions by ID', () => {
  const running: Served[] = [];
  after(async () => {
    for (const served of running) await served.stop();
  });
  const start = async (text: string): Promise<Served> => {
    const served = await serve(text, FIXTURES);
    running.push(served);
    return served;
  };

  for (const cache of ['ssl_session_cache builtin;', 'ssl_session_cache builtin:1000;', 'ssl_session_cache shared:SSL:1m;', 'ssl_session_cache builtin:100 shared:SSL:1m;']) {
    it(`${cache} resumes`, async () => {
      const { port } = await start(conf(cache));
      const { first, again } = await resumes(port);
      assert.equal(first.body, '.');
      assert.deepEqual([again.reused, again.body], [true, 'r']);
    });
  }

  for (const cache of ['ssl_session_cache off;', 'ssl_session_cache none;', '']) {
    it(`${cache || 'the default (none)'} resumes nothing`, async () => {
      const { port } = await start(conf(cache));
      const first = await get12(port);
      assert.ok(first.session !== undefined, 'the client kept no session to offer');
      const replies = await Promise.all(Array.from({ length: 5 }, () => get12(port, first.session)));
      assert.deepEqual(replies.map((reply) => [reply.reused, reply.body]), Array.from({ length: 5 }, () => [false, '.']));
    });
  }

  it('a session expires after ssl_session_timeout', async () => {
    const { port } = await start(conf('ssl_session_cache builtin; ssl_session_timeout 1s;'));
    const first = await get12(port);
    assert.ok(first.session !== undefined);
    // Resumed until it expires (1s), then never again; the wait is bounded, not timed.
    let reused = true;
    for (let attempt = 0; attempt < 100 && reused; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      reused = (await get12(port, first.session)).reused;
    }
    assert.equal(reused, false, 'the session still resumed 10 s after a 1 s timeout');
  });

  it('a session made without client verification is not resumed by a server that verifies clients', async () => {
    const served = await start(conf('ssl_session_cache shared:SSL:1m;', `server {
        listen 127.0.0.1:2443 ssl;
        server_name a.test;
        ssl_verify_client optional;
        ssl_client_certificate client-ca.crt;
        return 200 "$ssl_session_reused";
    }`));
    const plain = served.ports.get('127.0.0.1:1443') ?? 0;
    const verifying = served.ports.get('127.0.0.1:2443') ?? 0;
    const { first, again } = await resumes(plain);
    assert.equal(again.reused, true, 'the session does not resume on its own server');
    const elsewhere = await get12(verifying, first.session);
    assert.deepEqual([elsewhere.reused, elsewhere.body], [false, '.']);
    // The verifying server's own sessions resume there: the zone is shared, the id contexts differ.
    const own = await resumes(verifying);
    assert.equal(own.again.reused, true);
  });
});

describe('session stores', () => {
  it('expires a session after its timeout', () => {
    const store = new SessionStore(10);
    store.put('aa', Buffer.from('x'), 1000, 0);
    assert.deepEqual(store.get('aa', 999), Buffer.from('x'));
    assert.equal(store.get('aa', 1000), undefined);
    assert.equal(store.size, 0);
  });

  it('evicts the least recently used session beyond its capacity', () => {
    const store = new SessionStore(2);
    store.put('a', Buffer.from('1'), 1000, 0);
    store.put('b', Buffer.from('2'), 1000, 0);
    assert.ok(store.get('a', 1));
    store.put('c', Buffer.from('3'), 1000, 2);
    assert.deepEqual([store.get('a', 3)?.toString(), store.get('b', 3), store.get('c', 3)?.toString()], ['1', undefined, '3']);
  });

  it('sizes a shared zone as nginx does: about 4000 sessions per megabyte', () => {
    assert.equal(sharedZoneSessions(1024 * 1024), 4000);
    assert.equal(sharedZoneSessions(10 * 1024 * 1024), 40000);
    assert.equal(sharedZoneSessions(32 * 1024), 125);
  });

  it('keeps a shared zone across a reload only when its name and size are unchanged', () => {
    const caches = new MasterSessionCaches();
    const put = (size: number): void => void caches.answer({ type: 'ssl-session', op: 'put', zone: 'SSL', size, session: 'ab', data: 'eA==', timeoutMs: 60_000 });
    const ask = (size: number): string | null | undefined => caches.answer({ type: 'ssl-session', op: 'get', id: 7, zone: 'SSL', size, session: 'ab' })?.data;
    put(1024 * 1024);
    caches.retain(load('http { ssl_session_cache shared:SSL:1m; server { listen 443; } }'));
    assert.equal(ask(1024 * 1024), 'eA==');
    caches.retain(load('http { server { listen 443; ssl_session_cache shared:SSL:1m; } }'));
    assert.equal(ask(1024 * 1024), 'eA==', 'a zone declared in a server was freed');
    caches.retain(load('http { ssl_session_cache shared:SSL:2m; }'));
    assert.equal(ask(1024 * 1024), null);
  });
});
