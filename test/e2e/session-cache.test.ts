/**
 * `ssl_session_cache shared:SSL:1m` with a real master and two workers: the zone lives in the
 * master, so a TLSv1.2 session (tickets off) made on one worker resumes on both, and still resumes
 * after a reload that keeps the zone's name and size. A reload that changes the size frees it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { firstSession, fixture, getWithSession, offerOnEveryWorker } from '../tls/session-client.js';
import { MasterUnderTest, TestPrefix, freePort, isAlive, startMaster, waitFor } from './helpers/masters.js';

const conf = (options: { plain: number; tls: number; zone: string; comment?: string }): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    # ${options.comment ?? 'start'}
    ssl_session_cache ${options.zone};
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:${options.plain};
        listen 127.0.0.1:${options.tls} ssl;
        server_name a.test;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('a-rsa.key')};
        location / { return 200 $pid; }
    }
}
`;

describe('ssl_session_cache shared across workers and reloads', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let plain: number;
  let tls: number;

  before(async () => {
    plain = await freePort();
    tls = await freePort();
    master = await startMaster({ prefix, conf: conf({ plain, tls, zone: 'shared:SSL:1m' }), port: plain, program: 'hitless' });
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  it('resumes a TLSv1.2 session on both workers', async () => {
    const { session } = await firstSession(tls, 'TLSv1.2');
    const replies = await offerOnEveryWorker(tls, session, 'TLSv1.2');
    assert.deepEqual(replies.filter((reply) => !reply.reused).map((reply) => reply.body), []);
    assert.equal(new Set(replies.map((reply) => reply.body)).size, 2, 'every connection landed on one worker');
  });

  it('resumes a session from before a reload on the new workers, and none after the zone changes size', async () => {
    const { session, body: oldPid } = await firstSession(tls, 'TLSv1.2');
    const old = master?.liveWorkers() ?? [];
    assert.ok(old.includes(Number(oldPid)));
    prefix.writeConf(conf({ plain, tls, zone: 'shared:SSL:1m', comment: 'reloaded' }));
    master?.signal('SIGHUP');
    await prefix.waitForLog('start worker process', old.length + 2);
    await waitFor('the old workers to exit', () => (old.some(isAlive) ? undefined : true));
    const replies = await offerOnEveryWorker(tls, session, 'TLSv1.2');
    assert.deepEqual(replies.filter((reply) => !reply.reused).map((reply) => reply.body), []);
    const pids = new Set(replies.map((reply) => Number(reply.body)));
    assert.equal(pids.size, 2, 'every connection landed on one worker');
    for (const pid of pids) assert.ok(!old.includes(pid), `worker ${pid} is from before the reload`);

    // ngx_init_cycle() frees a zone whose size changed: its sessions are gone.
    const current = master?.liveWorkers() ?? [];
    prefix.writeConf(conf({ plain, tls, zone: 'shared:SSL:2m', comment: 'resized' }));
    master?.signal('SIGHUP');
    await prefix.waitForLog('start worker process', old.length + current.length + 2);
    await waitFor('the previous workers to exit', () => (current.some(isAlive) ? undefined : true));
    const resized = await Promise.all(Array.from({ length: 10 }, () => getWithSession(tls, session, 'TLSv1.2')));
    assert.deepEqual(resized.filter((reply) => reply.reused).map((reply) => reply.body), []);
  });
});
