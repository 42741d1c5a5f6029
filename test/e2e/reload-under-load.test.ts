/**
 * THE key property, with the real binary and the real HTTP runtime: not one failed request across
 * 50 reloads under keep-alive load, and across 50 more with a new connection per request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { httpConf } from './helpers/http-conf.js';
import { MasterUnderTest, TestPrefix, freePort, startMaster } from './helpers/masters.js';
import { reloadUnderLoad } from './helpers/reload-under-load.js';

const RELOADS = 50;

describe('reloads under load', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;
  const conf = (body: string): string => httpConf({ port, body });

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: conf('start'), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  for (const newConnections of [false, true]) {
    it(`loses no request across ${RELOADS} reloads with ${newConnections ? 'a new connection per request' : 'keep-alive connections'}`, async (t) => {
      const { report, reloads } = await reloadUnderLoad({ master, prefix, port, conf, reloads: RELOADS, newConnections, concurrency: 16 });
      t.diagnostic(`${report.total} requests over ${report.connections} connections, ${report.failed} failed`);
      assert.equal(reloads, RELOADS);
      assert.ok(report.total > RELOADS * 10, `only ${report.total} requests were sent`);
      assert.equal(report.failed, 0, JSON.stringify({ byStatus: report.byStatus, byError: report.byError, firstFailures: report.firstFailures }));
      // Every reload replaced the workers: none of the first generation is left.
      assert.equal(master.liveWorkers().length <= 2 * 2, true);
    });
  }
});
