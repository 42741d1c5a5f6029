/**
 * The binary upgrade with the real binary: SIGUSR2 starts a new master on the same listening
 * sockets, both serve, and QUIT to the old one loses nothing, under keep-alive load.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runProbe } from '../../src/probe/probe.js';
import { httpConf } from './helpers/http-conf.js';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, isAlive, startMaster, waitFor } from './helpers/masters.js';

describe('binary upgrade', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: httpConf({ port, body: 'old' }), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  for (const newConnections of [false, true]) {
    it(`USR2 then QUIT of the old master loses nothing (${newConnections ? 'new connections' : 'keep-alive'})`, async (t) => {
      const oldPid = prefix.requirePid();
      const stop = new AbortController();
      const probe = runProbe({ url: `http://127.0.0.1:${port}/`, durationMs: Infinity, concurrency: 16, newConnections, timeoutMs: 10_000 }, stop.signal);
      try {
        prefix.writeConf(httpConf({ port, body: `new-${oldPid}` }));
        process.kill(oldPid, 'SIGUSR2');
        const newPid = await waitFor('the new master', () => {
          const pid = prefix.pid();
          return pid !== undefined && pid !== oldPid ? pid : undefined;
        }, 15_000);
        assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), oldPid);
        await waitFor('the new master to serve', async () => ((await bodyOf(port)) === `new-${oldPid}\n` ? true : undefined), 15_000);
        process.kill(oldPid, 'SIGQUIT');
        await waitFor('the old master to exit', () => (!isAlive(oldPid) ? true : undefined), 15_000);
        assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), undefined);
        assert.equal(prefix.pid(), newPid);
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        stop.abort();
      }
      const report = await probe;
      t.diagnostic(`${report.total} requests, ${report.failed} failed`);
      assert.ok(report.total > 50, `only ${report.total} requests were sent`);
      assert.equal(report.failed, 0, JSON.stringify({ byStatus: report.byStatus, byError: report.byError, firstFailures: report.firstFailures }));
    });
  }
});
