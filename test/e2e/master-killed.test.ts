/**
 * SIGKILL of the master is no outage (issue 15). Its workers used to exit within 0.2 s, and every
 * new connection was refused; nginx's workers serve on, but then no new nginx can bind the ports
 * they hold. hitless's workers serve on (logged at [alert]), one of them starts the master again
 * with the listening sockets (as a binary upgrade hands them over), and once the new master's pid
 * file names it the orphans drain and exit. Under a probe's load of new connections and of
 * keep-alive ones: no failed request, a new master in the pid file with workers of its own, and
 * no orphan left.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { runProbe } from '../../src/probe/probe.js';
import { join } from 'node:path';
import { AdminClient } from '../../src/admin/admin-client.js';
import { freePort, get, isAlive, readyWorkers, startMaster, TestPrefix, waitFor, type MasterUnderTest } from './helpers/masters.js';

describe('the master killed with SIGKILL', () => {
  const prefixes: TestPrefix[] = [];
  const masters: MasterUnderTest[] = [];
  after(async () => {
    await Promise.all(masters.map((master) => master.stop()));
    for (const prefix of prefixes) prefix.remove();
  });

  for (const newConnections of [true, false]) {
    it(`${newConnections ? 'new connections' : 'keep-alive connections'}: no request fails while a new master takes over, and no orphan is left`, async (t) => {
      const prefix = new TestPrefix();
      prefixes.push(prefix);
      const port = await freePort();
      const master = await startMaster({
        prefix,
        port,
        program: 'hitless',
        conf: `worker_processes 2;\nerror_log logs/error.log info;\nadmin_listen unix:logs/admin.sock;\nevents {}\nhttp {\n    access_log off;\n    server {\n        listen 127.0.0.1:${port};\n        location / { return 200 "ok\\n"; }\n    }\n}\n`,
      });
      masters.push(master);
      // Both workers serving: one still starting when its master dies has nothing to keep up, and exits.
      await readyWorkers(new AdminClient({ socketPath: join(prefix.dir, 'logs/admin.sock') }), 2);
      const oldMaster = prefix.requirePid();
      const oldWorkers = [...prefix.errorLog().matchAll(/start worker process (\d+)/g)].map((m) => Number(m[1]));
      assert.equal(oldWorkers.length, 2);
      const stop = new AbortController();
      const probe = runProbe({ url: `http://127.0.0.1:${port}/`, durationMs: Infinity, concurrency: 8, newConnections, timeoutMs: 10_000 }, stop.signal);
      try {
        // One request of our own answered: the probe's are flowing too when the kill comes.
        assert.deepEqual(await get(port), { status: 200, body: 'ok\n' });
        process.kill(oldMaster, 'SIGKILL');
        await prefix.waitForLog('exited unexpectedly: the worker serves on', 2, 20_000);
        const newMaster = await waitFor('a new master in the pid file', () => {
          const pid = prefix.pid();
          return pid !== undefined && pid !== oldMaster && isAlive(pid) ? pid : undefined;
        }, 20_000);
        await prefix.waitForLog(`master process ${newMaster} took over`, 2, 10_000);
        // Every orphan exits once it drained (a zombie, if nobody reaps it here, has logged "exit").
        await prefix.waitForLog('exit\n', 2, 15_000);
        assert.ok([...prefix.errorLog().matchAll(new RegExp(`\\] ${newMaster}#0: start worker process \\d+`, 'g'))].length === 2, prefix.errorLog());
        for (const pid of oldWorkers) assert.match(prefix.errorLog(), new RegExp(`\\] ${pid}#0: exit\\n`));
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
