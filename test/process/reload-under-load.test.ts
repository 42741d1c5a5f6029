/**
 * Zero failed requests across reloads, with a fake runtime standing in for the HTTP layer: proves
 * the process layer's part (sockets kept, new workers ready before old ones drain) on its own.
 * test/e2e/reload-under-load.test.ts proves the same with the real HTTP runtime.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, startMaster } from '../e2e/helpers/masters.js';
import { reloadUnderLoad } from '../e2e/helpers/reload-under-load.js';

describe('reloads under load (fake runtime)', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;
  const conf = (body: string): string =>
    `# fake-listen: 127.0.0.1:${port}\n# fake-body: ${body}\nworker_processes 2;\nerror_log logs/error.log notice;\nevents {}\n`;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: conf('start'), port, program: 'fake' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  for (const newConnections of [false, true]) {
    it(`loses no request across 20 reloads with ${newConnections ? 'a new connection per request' : 'keep-alive connections'}`, async () => {
      const { report, reloads } = await reloadUnderLoad({ master, prefix, port, conf, reloads: 20, newConnections, concurrency: 16 });
      assert.equal(reloads, 20);
      assert.ok(report.total > 100, `only ${report.total} requests were sent`);
      assert.equal(report.failed, 0, JSON.stringify({ byStatus: report.byStatus, byError: report.byError, firstFailures: report.firstFailures }));
    });
  }
});
