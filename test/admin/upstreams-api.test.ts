/**
 * `GET /v1/upstreams` with a real master and two workers: a peer killed under traffic shows as
 * unavailable (passive, max_fails, shared by `zone`) and as unhealthy (the master's health check),
 * each worker's view is there, `hitless upstreams` prints it and exits 3, and a worker that does
 * not answer in time (stopped with SIGSTOP) is reported as such instead of holding the answer.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/admin-client.js';
import type { UpstreamPeerReport, UpstreamsReport } from '../../src/upstream/upstream-report.js';
import { startBackend, type Backend } from '../upstream/backends.js';
import { MasterUnderTest, TestPrefix, freePort, get, readyWorkers, runHitlessCommand, startMaster, waitFor } from '../e2e/helpers/masters.js';


function peerOf(report: UpstreamsReport, group: string, port: number): UpstreamPeerReport | undefined {
  return report.upstreams.find((candidate) => candidate.name === group)?.peers.find((peer) => peer.peer === `127.0.0.1:${port}`);
}

describe('the admin API\'s upstream states', () => {
  const prefix = new TestPrefix();
  const socket = join(prefix.dir, 'logs/admin.sock');
  let master: MasterUnderTest | undefined;
  let port = 0;
  const backends: Backend[] = [];
  let victim: Backend;
  let admin: AdminClient;

  before(async () => {
    for (const name of ['a', 'b', 'victim']) backends.push(await startBackend(name));
    victim = backends[2] as Backend;
    const [a, b] = backends as [Backend, Backend];
    port = await freePort();
    master = await startMaster({
      prefix,
      port,
      program: 'hitless',
      conf: `worker_processes 2;
error_log logs/error.log notice;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    upstream passive {
        zone passive 64k;
        server 127.0.0.1:${a.port};
        server 127.0.0.1:${b.port} drain;
        server 127.0.0.1:${victim.port} max_fails=1 fail_timeout=60s;
    }
    upstream checked {
        server 127.0.0.1:${a.port};
        server 127.0.0.1:${victim.port};
    }
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "up\\n"; }
        location /passive { proxy_pass http://passive; }
        location /checked { proxy_pass http://checked; health_check interval=200ms; }
    }
}
`,
    });
    admin = new AdminClient({ socketPath: socket });
    // Only ready workers are asked.
    await readyWorkers(admin, 2);
  });
  after(async () => {
    await master?.stop();
    for (const backend of backends) await backend.stop();
    prefix.remove();
  });

  it('shows every peer up, with each worker\'s view, before anything fails', async () => {
    for (let i = 0; i < 6; i++) {
      const reply = await get(port, '/passive');
      assert.ok('status' in reply && reply.status === 200 && reply.body !== 'b', `b drains: ${JSON.stringify(reply)}`);
    }
    const report = await admin.upstreams();
    assert.equal(report.workers.length, 2);
    assert.ok(report.workers.every((worker) => worker.answered), JSON.stringify(report.workers));
    const passive = report.upstreams.find((group) => group.name === 'passive');
    assert.equal(passive?.method, 'round_robin');
    assert.equal(passive?.zone, true);
    assert.deepEqual(passive?.peers.map((peer) => peer.state), ['up', 'draining', 'up']);
    assert.equal(passive?.peers.reduce((sum, peer) => sum + peer.requests, 0), 6);
    assert.ok(passive?.peers.every((peer) => peer.workers.length === 2));
    await waitFor('the first health checks', async () => ((peerOf(await admin.upstreams(), 'checked', victim.port)?.health?.checks ?? 0) > 0 ? true : undefined));
  });

  it('shows a killed peer as unavailable (max_fails, every worker through zone) and unhealthy (health_check)', async () => {
    await victim.stop();
    // Round robin over a and the victim (b drains): the victim's turn comes within a few requests.
    await waitFor('a failure to reach the victim', async () => {
      const reply = await get(port, '/passive');
      assert.ok('status' in reply && reply.status === 200, JSON.stringify(reply));
      return prefix.count('connect() failed (111: Connection refused) while connecting to upstream') > 0 ? true : undefined;
    });
    await prefix.waitForLog('peer is unhealthy');
    const report = await waitFor('both workers to see the failure', async () => {
      const answer = await admin.upstreams();
      const peer = peerOf(answer, 'passive', victim.port);
      return peer?.workers.length === 2 && peer.workers.every((view) => view.state === 'unavailable') ? answer : undefined;
    });
    const passive = peerOf(report, 'passive', victim.port);
    assert.equal(passive?.state, 'unavailable');
    assert.equal(passive?.fails, 1);
    assert.ok((passive?.failures ?? 0) >= 1 && (passive?.unavail ?? 0) >= 1, JSON.stringify(passive));
    const checked = peerOf(report, 'checked', victim.port);
    assert.equal(checked?.state, 'unhealthy');
    assert.match(checked?.health?.lastError ?? '', /Connection refused/);
    assert.equal(peerOf(report, 'checked', (backends[0] as Backend).port)?.state, 'up');
    // The passive transition is logged as nginx logs it.
    assert.match(prefix.errorLog(), /\[warn\] \d+#0: \*\d+ upstream server temporarily disabled while connecting to upstream, client: 127\.0\.0\.1/);

    const cli = await runHitlessCommand(['upstreams', '--socket', socket]);
    assert.equal(cli.code, 3, cli.stderr);
    assert.match(cli.stdout, new RegExp(`127\\.0\\.0\\.1:${victim.port} +unavailable`));
    assert.match(cli.stdout, new RegExp(`127\\.0\\.0\\.1:${victim.port} +unhealthy .*Connection refused`));
    assert.match(cli.stdout, /generation 1: 2 of 2 workers answered/);
    const json = await runHitlessCommand(['upstreams', 'checked', '--json', '--socket', socket]);
    assert.deepEqual((JSON.parse(json.stdout) as UpstreamsReport).upstreams.map((group) => group.name), ['checked']);
  });

  it('reports a worker that does not answer in time, and answers for the others', async () => {
    const status = await admin.status();
    const stopped = status.workers[0]?.pid as number;
    process.kill(stopped, 'SIGSTOP');
    let report: UpstreamsReport;
    try {
      report = await admin.upstreams({ timeoutMs: 300 });
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    assert.deepEqual(report.workers.find((worker) => worker.pid === stopped), { pid: stopped, answered: false, error: 'no answer in 300 ms' });
    assert.equal(report.workers.filter((worker) => worker.answered).length, 1);
    assert.equal(peerOf(report, 'passive', victim.port)?.workers.length, 1);
    const cli = await runHitlessCommand(['upstreams', '--socket', socket, '--timeout', 'soon']);
    assert.equal(cli.code, 2);
  });
});
