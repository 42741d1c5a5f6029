/**
 * `zone` with a real master and two workers: the failures of a dead peer are counted once for the
 * whole server, so it is tried max_fails times in all, not max_fails times per worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closedPort } from '../http/proxy-upstreams.js';
import { startBackend, type Backend } from '../upstream/backends.js';
import { MasterUnderTest, TestPrefix, freePort, get, startMaster } from './helpers/masters.js';

describe('an upstream zone shared by every worker', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let live: Backend | undefined;
  let port = 0;

  before(async () => {
    live = await startBackend('live');
    const dead = await closedPort();
    port = await freePort();
    master = await startMaster({
      prefix,
      port,
      program: 'hitless',
      conf: `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    upstream app {
        zone app 64k;
        server 127.0.0.1:${dead} max_fails=2 fail_timeout=60s;
        server 127.0.0.1:${live.port};
    }
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "up\\n"; }
        location /app { proxy_pass http://app; }
    }
}
`,
    });
  });
  after(async () => {
    await master?.stop();
    await live?.stop();
    prefix.remove();
  });

  it('counts max_fails once for all workers', async () => {
    for (let i = 0; i < 40; i++) {
      const reply = await get(port, '/app');
      assert.ok('body' in reply && reply.status === 200 && reply.body === 'live', JSON.stringify(reply));
    }
    // Without zone each worker would try the dead peer twice (4 in all with both workers serving).
    assert.equal(prefix.count('connect() failed (111: Connection refused) while connecting to upstream, client'), 2, prefix.errorLog());
  });
});
