/**
 * `hitless_upstream_peer_downtime_seconds_total` with the real binary and two workers: a peer that
 * max_fails takes out while it refuses connections, and one the active health check finds
 * unhealthy, are down for a measured time, and the counter grows by about that time (once, not
 * once per worker), keeps growing across a reload in the middle, and never goes back.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBackend, type Backend } from '../upstream/backends.js';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, sleep, startMaster, waitFor } from './helpers/masters.js';

/** How long each peer is kept down. */
const DOWN_MS = 3_000;
/** fail_timeout of the passive group: the peer stays out up to this long after it is back. */
const FAIL_TIMEOUT_MS = 1_000;

function scrape(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/metrics', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('upstream peer downtime', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let port = 0;
  let socketPath = '';
  const backends: Backend[] = [];
  const conf = (generation: number): string => `worker_processes 2;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    upstream passive {
        server 127.0.0.1:${backends[0]?.port ?? 0} max_fails=1 fail_timeout=${FAIL_TIMEOUT_MS / 1000}s;
        server 127.0.0.1:${backends[1]?.port ?? 0} max_fails=1 fail_timeout=${FAIL_TIMEOUT_MS / 1000}s;
    }
    upstream checked {
        server 127.0.0.1:${backends[2]?.port ?? 0};
    }
    server {
        listen 127.0.0.1:${port};
        location /passive { proxy_pass http://passive; }
        location /checked { proxy_pass http://checked; health_check interval=100ms fails=1 passes=1 uri=/health; }
        location = /generation { return 200 "${generation}"; }
        location / { return 200 "ok"; }
    }
}
`;

  before(async () => {
    for (const name of ['a', 'b', 'c']) backends.push(await startBackend(name));
    port = await freePort();
    socketPath = join(prefix.dir, 'logs/admin.sock');
    master = await startMaster({ prefix, conf: conf(0), port, program: 'hitless' });
    await waitFor('two ready workers', async () => (/hitless_workers\{state="ready"\} 2\n/.test(await scrape(socketPath)) ? true : undefined), 15_000);
  });
  after(async () => {
    await master?.stop();
    for (const backend of backends) await backend.stop();
    prefix.remove();
  });

  it(`counts the time (at least ${DOWN_MS} ms) for a peer out by max_fails and for one the health check has unhealthy`, { timeout: 60_000 }, async (t) => {
    const passive = `hitless_upstream_peer_downtime_seconds_total{upstream="passive",peer="127.0.0.1:${backends[1]?.port}"}`;
    const checked = `hitless_upstream_peer_downtime_seconds_total{upstream="checked",peer="127.0.0.1:${backends[2]?.port}"}`;
    const first = await scrape(socketPath);
    assert.equal(sample(first, passive), 0);
    assert.equal(sample(first, checked), 0);
    // Requests keep coming to both workers, as under real traffic: the failures take the peer out.
    let loading = true;
    const load = Array.from({ length: 4 }, async () => {
      while (loading) {
        await bodyOf(port, '/passive');
        await sleep(10);
      }
    });
    let previous = { passive: 0, checked: 0 };
    const decreases: string[] = [];
    let scraping = true;
    const scraper = (async () => {
      while (scraping) {
        const text = await scrape(socketPath);
        const now = { passive: sample(text, passive) ?? -1, checked: sample(text, checked) ?? -1 };
        if (now.passive < previous.passive || now.checked < previous.checked) decreases.push(`${JSON.stringify(previous)} -> ${JSON.stringify(now)}`);
        previous = now;
        await sleep(200);
      }
    })();
    let downAt = 0;
    let upAt = 0;
    try {
      const b = backends[1] as Backend;
      const c = backends[2] as Backend;
      await b.stop();
      c.healthStatus = 503;
      downAt = Date.now();
      // A reload in the middle: the new workers' peers start afresh, the counter goes on.
      await sleep(DOWN_MS / 2);
      prefix.writeConf(conf(1));
      master?.signal('SIGHUP');
      await waitFor('the reload', async () => ((await bodyOf(port, '/generation')) === '1' ? true : undefined), 15_000);
      await sleep(Math.max(0, DOWN_MS - (Date.now() - downAt)));
      await b.restart();
      c.healthStatus = 200;
      upAt = Date.now();
      t.diagnostic(`down for ${upAt - downAt} ms`);
      await waitFor('both peers up again', async () => {
        const text = await scrape(socketPath);
        const up = (peer: string, group: string): boolean => sample(text, `hitless_upstream_peer_state{upstream="${group}",peer="${peer}",state="up"}`) === 1;
        return up(`127.0.0.1:${b.port}`, 'passive') && up(`127.0.0.1:${c.port}`, 'checked') && b.hits > 0 ? true : undefined;
      }, 15_000);
    } finally {
      loading = false;
      await Promise.all(load);
      scraping = false;
      await scraper;
    }
    const last = await scrape(socketPath);
    const downSeconds = (upAt - downAt) / 1000;
    const passiveSeconds = sample(last, passive) ?? 0;
    const checkedSeconds = sample(last, checked) ?? 0;
    t.diagnostic(`passive ${passiveSeconds} s, checked ${checkedSeconds} s`);
    assert.deepEqual(decreases, []);
    // Out from the first failed try (the load tries every few ms) to fail_timeout after the last.
    assert.ok(passiveSeconds >= downSeconds - 0.5 && passiveSeconds <= downSeconds + FAIL_TIMEOUT_MS / 1000 + 0.7, `passive peer: ${passiveSeconds} s`);
    // From the first failed probe to the first passed one, 100 ms apart.
    assert.ok(checkedSeconds >= downSeconds - 0.5 && checkedSeconds <= downSeconds + 0.7, `checked peer: ${checkedSeconds} s`);
    // The peers that never went down have no downtime.
    assert.equal(sample(last, `hitless_upstream_peer_downtime_seconds_total{upstream="passive",peer="127.0.0.1:${backends[0]?.port}"}`), 0);
  });
});
