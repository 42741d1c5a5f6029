/**
 * TLS session resumption by ticket with a real master and two workers: the master's ticket key is
 * every worker's, so a session resumes whichever worker accepts the connection, and still resumes
 * after a reload (the key outlives generations). `ssl_session_tickets off` resumes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { firstSession, fixture, getWithSession, offerOnEveryWorker } from '../tls/session-client.js';
import { MasterUnderTest, TestPrefix, freePort, isAlive, startMaster, waitFor } from './helpers/masters.js';

const conf = (options: { plain: number; tls: number; tickets: boolean; comment?: string }): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    # ${options.comment ?? 'start'}
    server {
        listen 127.0.0.1:${options.plain};
        listen 127.0.0.1:${options.tls} ssl;
        server_name a.test;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('a-rsa.key')};
        ssl_session_tickets ${options.tickets ? 'on' : 'off'};
        location / { return 200 $pid; }
    }
}
`;

describe('session tickets across workers and reloads', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let plain: number;
  let tls: number;

  before(async () => {
    plain = await freePort();
    tls = await freePort();
    master = await startMaster({ prefix, conf: conf({ plain, tls, tickets: true }), port: plain, program: 'hitless' });
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  it('resumes a TLSv1.3 session on both workers', async () => {
    const { session } = await firstSession(tls);
    const replies = await offerOnEveryWorker(tls, session);
    assert.deepEqual(replies.filter((reply) => !reply.reused).map((reply) => reply.body), []);
    assert.equal(new Set(replies.map((reply) => reply.body)).size, 2, 'every connection landed on one worker');
  });

  it('resumes a TLSv1.2 session on both workers', async () => {
    const { session } = await firstSession(tls, 'TLSv1.2');
    const replies = await offerOnEveryWorker(tls, session, 'TLSv1.2');
    assert.deepEqual(replies.filter((reply) => !reply.reused).map((reply) => reply.body), []);
    assert.equal(new Set(replies.map((reply) => reply.body)).size, 2, 'every connection landed on one worker');
  });

  it('resumes a session from before a reload on the new workers', async () => {
    const { session, body: oldPid } = await firstSession(tls);
    const old = master?.liveWorkers() ?? [];
    assert.ok(old.includes(Number(oldPid)));
    prefix.writeConf(conf({ plain, tls, tickets: true, comment: 'reloaded' }));
    master?.signal('SIGHUP');
    await prefix.waitForLog('start worker process', old.length + 2);
    await waitFor('the old workers to exit', () => (old.some(isAlive) ? undefined : true));
    const replies = await offerOnEveryWorker(tls, session);
    assert.deepEqual(replies.filter((reply) => !reply.reused).map((reply) => reply.body), []);
    const pids = new Set(replies.map((reply) => Number(reply.body)));
    assert.equal(pids.size, 2, 'every connection landed on one worker');
    for (const pid of pids) assert.ok(!old.includes(pid), `worker ${pid} is from before the reload`);
  });
});

describe('ssl_session_tickets off', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let tls: number;

  before(async () => {
    const plain = await freePort();
    tls = await freePort();
    master = await startMaster({ prefix, conf: conf({ plain, tls, tickets: false }), port: plain, program: 'hitless' });
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`resumes no ${maxVersion} session`, async () => {
      const first = await getWithSession(tls, undefined, maxVersion);
      // TLSv1.3 may still send a stateful ticket (a session id); no worker keeps a session cache.
      const replies = await Promise.all(Array.from({ length: 20 }, () => getWithSession(tls, first.session, maxVersion)));
      assert.equal(replies.length, 20);
      assert.deepEqual(replies.filter((reply) => reply.reused).map((reply) => reply.body), []);
    });
  }
});

/**
 * `ssl_session_cache shared:` zone's ticket keys, as `ngx_ssl_rotate_ticket_keys()` keeps them in
 * the zone: the master replaces the current key every `ssl_session_timeout` (the zone's shortest)
 * from the first ticket, on every worker; the replaced key still decrypts, and its tickets are
 * renewed under the new one, until the next rotation. nginx-tests' ssl_session_ticket_key.t.
 */
describe('a shared zone\'s ticket keys rotate every ssl_session_timeout', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let short: number;
  let long: number;

  // Both servers share the zone: the 3 s server sets the rotation, the 60 s one lets a ticket live through two.
  const zoneConf = (plain: number): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    ssl_certificate ${fixture('a-rsa.fullchain.crt')};
    ssl_certificate_key ${fixture('a-rsa.key')};
    ssl_session_cache shared:SSL:1m;
    server { listen 127.0.0.1:${plain}; location / { return 200 $pid; } }
    server { listen 127.0.0.1:${short} ssl; server_name a.test; ssl_session_timeout 3s; location / { return 200 $pid; } }
    server { listen 127.0.0.1:${long} ssl; server_name a.test; ssl_session_timeout 60s; location / { return 200 $pid; } }
}
`;

  before(async () => {
    const plain = await freePort();
    short = await freePort();
    long = await freePort();
    master = await startMaster({ prefix, conf: zoneConf(plain), port: plain, program: 'hitless' });
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  /** The key a fresh ticket is under once it is no longer `key`. */
  const nextKey = (key: string | undefined): Promise<string> =>
    waitFor(`a ticket key other than ${key ?? ''}`, async () => {
      const fresh = await getWithSession(long);
      return fresh.ticketKey !== undefined && fresh.ticketKey !== key ? fresh.ticketKey : undefined;
    });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${version}: a ticket under the replaced key resumes and is renewed, and not after the next rotation`, async () => {
      const first = await firstSession(long, version);
      const keyA = first.ticketKey;
      assert.ok(keyA !== undefined);
      // Both workers encrypt under the zone's key.
      const everyWorker = await offerOnEveryWorker(long, first.session, version);
      assert.deepEqual(everyWorker.filter((reply) => !reply.reused).map((reply) => reply.body), []);
      const keyB = await nextKey(keyA);
      const renewed = await getWithSession(long, first.session, version);
      assert.equal(renewed.reused, true);
      assert.equal(renewed.ticketKey, keyB);
      // Once the current key is the one after B, A is gone.
      await nextKey(keyB);
      assert.equal((await getWithSession(long, first.session, version)).reused, false);
    });
  }
});
