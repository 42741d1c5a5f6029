/**
 * A balanced, actively checked upstream behind a real master with two workers: reloads under load
 * lose no request, the one checker's state (a dead peer kept out) survives every reload, and the
 * live peers share the load.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runProbe } from '../../src/probe/probe.js';
import { closedPort } from '../http/proxy-upstreams.js';
import { startBackend, type Backend } from '../upstream/backends.js';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, startMaster, waitFor } from './helpers/masters.js';

const RELOADS = 10;

describe('a health-checked upstream across reloads', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let port = 0;
  let dead = 0;
  const backends: Backend[] = [];
  const conf = (body: string): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    upstream app {
        least_conn;
        server 127.0.0.1:${backends[0]?.port ?? 0};
        server 127.0.0.1:${backends[1]?.port ?? 0};
        server 127.0.0.1:${dead};
    }
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "${body}\\n"; }
        location /app { proxy_pass http://app; health_check interval=200ms mandatory; }
    }
}
`;

  before(async () => {
    backends.push(await startBackend('one'), await startBackend('two'));
    dead = await closedPort();
    port = await freePort();
    master = await startMaster({ prefix, conf: conf('start'), port, program: 'hitless' });
    await prefix.waitForLog('peer is unhealthy');
  });
  after(async () => {
    await master?.stop();
    for (const backend of backends) await backend.stop();
    prefix.remove();
  });

  it(`loses no request across ${RELOADS} reloads, and the dead peer stays out without being checked anew`, async (t) => {
    const stop = new AbortController();
    const probe = runProbe({ url: `http://127.0.0.1:${port}/app`, durationMs: Infinity, concurrency: 8, timeoutMs: 10_000 }, stop.signal);
    try {
      for (let i = 0; i < RELOADS; i++) {
        const body = `reload-${i}`;
        prefix.writeConf(conf(body));
        master?.signal('SIGHUP');
        await waitFor(`reload ${i}`, async () => ((await bodyOf(port)) === `${body}\n` ? true : undefined), 20_000);
      }
    } finally {
      stop.abort();
    }
    const report = await probe;
    t.diagnostic(`${report.total} requests, ${report.failed} failed; hits: ${backends.map((b) => `${b.name}=${b.hits}`).join(' ')}`);
    assert.ok(report.total > RELOADS * 10, `only ${report.total} requests were sent`);
    assert.equal(report.failed, 0, JSON.stringify({ byStatus: report.byStatus, byError: report.byError, firstFailures: report.firstFailures }));
    const log = prefix.errorLog();
    // One checker for the whole server, kept by every reload: the dead peer was found out once.
    assert.equal(prefix.count('peer is unhealthy'), 1, log);
    assert.equal(prefix.count('peer is healthy'), 2, 'the live peers passed their first (mandatory) check once each');
    // And no user request ever went to it.
    assert.equal(prefix.count('while connecting to upstream, client'), 0, log);
    assert.ok(backends.every((backend) => backend.hits > 0));
  });
});
