/**
 * limit_req and limit_conn zones are shared by every worker, as nginx's shared memory is: with a
 * real master and two workers, one request per minute passes across many connections, whichever
 * worker accepts them; and the zone keeps its state across a reload that keeps it unchanged.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, startMaster } from './helpers/masters.js';

function limited(port: number): Promise<{ status: number; pid: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/limited', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, pid: String(res.headers['x-pid']) }));
    });
    req.on('error', reject);
  });
}

describe('shared zones across workers', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;
  const conf = (body: string): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "${body}\\n"; }
        location /limited { limit_req zone=one; add_header X-Pid $pid always; }
    }
}
`;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: conf('start'), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('lets exactly one request pass in the minute across both workers', async () => {
    const replies: { status: number; pid: string }[] = [];
    const pids = new Set<string>();
    // Bursts of new connections until both workers have answered some (the kernel picks the worker).
    for (let round = 0; round < 30 && (round < 6 || pids.size < 2); round++) {
      for (const reply of await Promise.all(Array.from({ length: 10 }, () => limited(port)))) {
        replies.push(reply);
        pids.add(reply.pid);
      }
    }
    assert.equal(replies.filter((r) => r.status !== 503).length, 1, JSON.stringify(replies.filter((r) => r.status !== 503)));
    assert.equal(replies.filter((r) => r.status === 503).length, replies.length - 1);
    assert.equal(pids.size, 2, `every request landed on one worker: ${[...pids].join(', ')}`);
    assert.match(prefix.errorLog(), /limiting requests, excess: 1\.000 by zone "one", client: 127\.0\.0\.1/);
  });

  it('keeps the zone across a reload that keeps it unchanged', async () => {
    const before = master.liveWorkers();
    prefix.writeConf(conf('reloaded'));
    master.signal('SIGHUP');
    await prefix.waitForLog('start worker process', before.length + 2);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const reply = await new Promise<string>((resolve) => http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body));
      }));
      if (reply === 'reloaded\n') break;
    }
    const replies = await Promise.all(Array.from({ length: 10 }, () => limited(port)));
    assert.deepEqual(replies.filter((r) => r.status !== 503), []);
  });
});
