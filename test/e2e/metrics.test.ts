/**
 * The Prometheus metrics with the real binary: scraped from the admin socket every 200 ms through
 * 20 reloads and a worker's SIGKILL under load, no counter ever goes down, and the final request
 * counter is the number of requests answered, less at most what the killed worker answered in
 * its last push interval (docs/observability.md, the in-flight window). A worker that does not
 * answer a scrape is reported, not left out; the output passes Prometheus's own parsers (promtool).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, startMaster, waitFor } from './helpers/masters.js';

const RELOADS = 20;
const SCRAPE_EVERY_MS = 200;
const CONCURRENCY = 6;
/**
 * What a SIGKILL may lose: a worker pushes every 100 ms (METRICS_PUSH_MS), later when its event
 * loop is busy; the test allows the killed worker's answers of the last second before the kill.
 */
const LOSS_WINDOW_MS = 1_000;

/** `name{labels}` to value, for every sample line. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    map.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return map;
}

/** Counter-like samples: counters, and histograms' buckets, counts and sums, which never go down. */
function isMonotonic(series: string): boolean {
  return /^[a-z_]+(?:_total|_bucket|_count|_sum)(?:\{|$)/.test(series);
}

function scrape(socketPath: string, accept?: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/metrics', headers: accept === undefined ? {} : { accept }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}

/** Runs promtool with `args`, `input` on its standard input; fails the test when promtool is missing. */
function promtool(args: readonly string[], input: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined) throw new Error(`promtool is needed (apt-get install prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('metrics: monotonic counters across reloads and a SIGKILL, in formats Prometheus parses', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;
  let checkPort: number;
  let socketPath: string;
  const conf = (generation: number): string => `worker_processes 2;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        server_name load;
        location / { add_header X-Pid $pid always; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:${checkPort};
        server_name check;
        location /metrics { hitless_metrics; }
        location / { return 200 "generation-${generation}"; }
    }
}
`;

  before(async () => {
    port = await freePort();
    checkPort = await freePort();
    socketPath = join(prefix.dir, 'logs/admin.sock');
    master = await startMaster({ prefix, conf: conf(0), port: checkPort, program: 'hitless' });
    await waitFor('two ready workers', async () => {
      const text = (await scrape(socketPath)).body;
      return /hitless_workers\{state="ready"\} 2\n/.test(text) ? true : undefined;
    }, 15_000);
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it(`never decreases a counter across ${RELOADS} reloads and a worker's SIGKILL, and counts every request answered`, { timeout: 180_000 }, async (t) => {
    let stopping = false;
    let attempts = 0;
    const answered: { pid: number; at: number }[] = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const request = (): Promise<void> => new Promise((resolve) => {
      attempts++;
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) answered.push({ pid: Number(res.headers['x-pid']), at: Date.now() });
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
    });
    const loops = Array.from({ length: CONCURRENCY }, async () => {
      while (!stopping) await request();
    });

    let previous = new Map<string, number>();
    let scrapes = 0;
    const decreases: string[] = [];
    let latest = '';
    let scraping = true;
    const scraper = (async () => {
      while (scraping) {
        const started = Date.now();
        const { status, body } = await scrape(socketPath);
        assert.equal(status, 200);
        const now = samples(body);
        for (const [series, value] of previous) {
          if (!isMonotonic(series)) continue;
          const current = now.get(series);
          if (current === undefined || current < value) decreases.push(`${series}: ${value} -> ${current ?? 'gone'} (scrape ${scrapes})`);
        }
        previous = now;
        latest = body;
        scrapes++;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, SCRAPE_EVERY_MS - (Date.now() - started))));
      }
    })();

    let killed: { pid: number; at: number } | undefined;
    try {
      for (let i = 1; i <= RELOADS; i++) {
        prefix.writeConf(conf(i));
        master.signal('SIGHUP');
        await waitFor(`reload ${i}`, async () => ((await bodyOf(checkPort)) === `generation-${i}` ? true : undefined), 30_000);
        if (i === RELOADS / 2) {
          // A worker of the generation now serving, killed as the kernel's OOM killer would.
          // The one that answers the load, so that the kill has counts in flight to lose.
          const generation = i + 1;
          const current = new Set([...(await scrape(socketPath)).body.matchAll(new RegExp(`hitless_worker_up\\{pid="(\\d+)",generation="${generation}"\\} 1`, 'g'))].map((m) => Number(m[1])));
          const pid = await waitFor('a worker of the current generation answering the load', () => {
            const recent = answered.slice(-50).filter((answer) => current.has(answer.pid));
            return recent.length >= 20 ? recent[recent.length - 1]?.pid : undefined;
          }, 20_000);
          killed = { pid, at: Date.now() };
          process.kill(pid, 'SIGKILL');
        }
      }
    } finally {
      stopping = true;
      await Promise.all(loops);
      agent.destroy();
      // Two more scrapes after the last answer: what the workers counted is in them.
      const seen = scrapes;
      await waitFor('two scrapes after the load', () => (scrapes >= seen + 2 ? true : undefined), 20_000);
      scraping = false;
      await scraper;
    }

    const final = samples(latest);
    const counted = final.get('hitless_http_requests_total{server="load",code="2xx"}') ?? 0;
    assert.ok(killed !== undefined);
    const window = answered.filter((answer) => answer.pid === killed.pid && answer.at >= killed.at - LOSS_WINDOW_MS).length;
    t.diagnostic(`${attempts} requests sent, ${answered.length} answered (${window} by the killed worker in its last ${LOSS_WINDOW_MS} ms), ${counted} counted, ${scrapes} scrapes`);
    assert.deepEqual(decreases, []);
    assert.ok(scrapes >= RELOADS, `only ${scrapes} scrapes`);
    assert.ok(answered.length > RELOADS * 10, `only ${answered.length} requests were answered`);
    assert.ok(counted <= attempts, `${counted} counted, more than the ${attempts} sent`);
    assert.ok(counted >= answered.length - window, `${counted} counted of ${answered.length} answered: more lost than the ${window} of the in-flight window`);
    assert.ok((final.get('hitless_worker_exits_total{reason="died"}') ?? 0) >= 1, 'the SIGKILL is not among the exits');
    assert.equal(final.get('hitless_reloads_total{result="success"}'), RELOADS);
    assert.equal(final.get('hitless_config_generation'), RELOADS + 1);
    assert.equal(final.get('hitless_config_last_reload_successful'), 1);
    const { status, output } = promtool(['check', 'metrics'], latest);
    assert.equal(status, 0, output);
  });

  it('reports a worker that does not answer in time, keeping its last counts', async () => {
    const before = await scrape(socketPath);
    const pid = Number(/hitless_worker_up\{pid="(\d+)",generation="\d+"\} 1/.exec(before.body)?.[1]);
    assert.ok(pid > 0);
    const timeouts = samples(before.body).get('hitless_scrape_worker_timeouts_total') ?? 0;
    const requests = samples(before.body).get('hitless_http_requests_total{server="load",code="2xx"}');
    process.kill(pid, 'SIGSTOP');
    try {
      const stopped = samples((await scrape(socketPath)).body);
      assert.equal(stopped.get(`hitless_worker_up{pid="${pid}",generation="${RELOADS + 1}"}`), 0);
      assert.equal(stopped.get('hitless_scrape_worker_timeouts_total'), timeouts + 1);
      assert.equal(stopped.get('hitless_http_requests_total{server="load",code="2xx"}'), requests);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('answers OpenMetrics when Accept asks for it, on the admin socket and from hitless_metrics, as promtool parses it', async () => {
    const accept = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    const admin = await scrape(socketPath, accept);
    assert.equal(admin.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.match(admin.body, /# TYPE hitless_http_requests counter\n/);
    assert.match(admin.body, /# EOF\n$/);
    const page = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: checkPort, path: '/metrics', headers: { accept } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      }).on('error', reject);
    });
    assert.equal(page.status, 200);
    assert.equal(page.type, admin.type);
    assert.match(page.body, /hitless_http_requests_total\{server="load",code="2xx"\} \d+/);
    // promtool reads OpenMetrics in `tsdb create-blocks-from openmetrics`, which wants a timestamp on every sample.
    const stamp = Math.floor(Date.now() / 1000);
    const stamped = page.body.split('\n').map((line) => (line === '' || line.startsWith('#') ? line : `${line} ${stamp}`)).join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'hitless-om-'));
    try {
      writeFileSync(join(dir, 'scrape.om'), stamped);
      const run = spawnSync('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', join(dir, 'scrape.om'), join(dir, 'blocks')], { encoding: 'utf8', timeout: 30_000 });
      if (run.error !== undefined) throw new Error(`promtool is needed (apt-get install prometheus): ${run.error.message}`);
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // As stub_status: HEAD has no body, other methods get 405.
    for (const [method, status] of [['HEAD', 200], ['POST', 405]] as const) {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: checkPort, path: '/metrics', method }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(answer.status, status, method);
      if (method === 'HEAD') assert.equal(answer.body, '');
    }
    const plain = await scrape(socketPath);
    assert.equal(plain.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(promtool(['check', 'metrics'], plain.body).status, 0);
  });
});
