/**
 * The Prometheus metrics with the real binary: scraped from the admin socket every 200 ms through
 * 20 reloads and a worker's SIGKILL under wrk's load, no counter ever goes down, and the final
 * request counter is the number of requests wrk made, within the in-flight window: at most one
 * request per connection more (answered as wrk stopped, never read), and at most what the killed
 * worker answered in its last push interval less (docs/observability.md). A worker that does not
 * answer a scrape is reported, not left out; the output passes Prometheus's own parsers (promtool).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, startMaster, waitFor } from './helpers/masters.js';
import { scrapeMetrics } from './helpers/scrape.js';

const RELOADS = 20;
const SCRAPE_EVERY_MS = 200;
const CONCURRENCY = 6;
/**
 * What a SIGKILL may lose: a worker pushes every 100 ms (METRICS_PUSH_MS), later when its event
 * loop is busy; the test allows the killed worker's answers of the second of the kill and the one
 * before (wrk's Lua script counts by whole seconds).
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

/** Runs promtool with `args`, `input` on its standard input; fails the test when promtool is missing. */
function promtool(args: readonly string[], input: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined) throw new Error(`promtool is needed (apt-get install prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** wrk's Lua script: responses by status, and 200s by the X-Pid header and second, printed by done(). */
const WRK_SCRIPT = `local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; bypid = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local key = (headers["X-Pid"] or "0") .. " " .. os.time()
    bypid[key] = (bypid[key] or 0) + 1
  end
end
function done(summary, latency, requests)
  io.write(string.format("requests %d\\n", summary.requests))
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do io.write(string.format("status %d %d\\n", status, n)) end
    for key, n in pairs(thread:get("bypid")) do io.write(string.format("pid %s %d\\n", key, n)) end
  end
end
`;

/** What wrk made: its count of requests (responses read), by status, and 200s by worker pid and second. */
interface WrkReport {
  readonly requests: number;
  readonly statuses: Map<number, number>;
  readonly byPid: { pid: number; second: number; count: number }[];
}

/** Starts wrk (Debian's /usr/bin/wrk) for a long time; stop() interrupts it (SIGINT: it prints its summary) and reads the report. */
function startWrk(args: readonly string[]): { stop(): Promise<WrkReport> } {
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const closed = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`wrk is needed (apt-get install wrk): ${err.message}`)));
    child.once('close', () => resolve());
  });
  return {
    async stop() {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await closed.finally(() => clearTimeout(timer));
      const total = /^requests (\d+)$/m.exec(output);
      if (total === null) throw new Error(`wrk printed no count: ${output}`);
      const statuses = new Map<number, number>();
      for (const m of output.matchAll(/^status (\d+) (\d+)$/gm)) statuses.set(Number(m[1]), (statuses.get(Number(m[1])) ?? 0) + Number(m[2]));
      const byPid = [...output.matchAll(/^pid (\d+) (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), second: Number(m[2]), count: Number(m[3]) }));
      return { requests: Number(total[1]), statuses, byPid };
    },
  };
}

/** The pids holding established connections on local port `port` (ss -tnp), the one with the most first. */
function connectionHolders(port: number): number[] {
  const run = spawnSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8', timeout: 10_000 });
  const counts = new Map<number, number>();
  for (const m of (run.stdout ?? '').matchAll(/pid=(\d+)/g)) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([pid]) => pid);
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
      const text = (await scrapeMetrics(socketPath)).body;
      return /hitless_workers\{state="ready"\} 2\n/.test(text) ? true : undefined;
    }, 15_000);
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it(`never decreases a counter across ${RELOADS} reloads and a worker's SIGKILL under wrk, and counts every request wrk made`, { timeout: 240_000 }, async (t) => {
    const script = join(prefix.dir, 'count.lua');
    writeFileSync(script, WRK_SCRIPT);
    const wrk = startWrk(['-t2', `-c${CONCURRENCY}`, '-d600s', '-s', script, `http://127.0.0.1:${port}/`]);

    let previous = new Map<string, number>();
    let scrapes = 0;
    const decreases: string[] = [];
    let latest = '';
    let scraping = true;
    const scraper = (async () => {
      while (scraping) {
        const started = Date.now();
        const { status, body } = await scrapeMetrics(socketPath);
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
    let report: WrkReport;
    try {
      await waitFor('wrk load counted', async () => ((samples((await scrapeMetrics(socketPath)).body).get('hitless_http_requests_total{server="load",code="2xx"}') ?? 0) > 100 ? true : undefined), 20_000);
      for (let i = 1; i <= RELOADS; i++) {
        prefix.writeConf(conf(i));
        master.signal('SIGHUP');
        await waitFor(`reload ${i}`, async () => ((await bodyOf(checkPort)) === `generation-${i}` ? true : undefined), 30_000);
        if (i === RELOADS / 2) {
          // A worker of the generation now serving, killed as the kernel's OOM killer would: one
          // that holds some of wrk's connections, so that the kill has counts in flight to lose.
          const generation = i + 1;
          const current = new Set([...(await scrapeMetrics(socketPath)).body.matchAll(new RegExp(`hitless_worker_up\\{pid="(\\d+)",generation="${generation}"\\} 1`, 'g'))].map((m) => Number(m[1])));
          const pid = await waitFor('a worker of the current generation holding wrk connections', () => connectionHolders(port).find((holder) => current.has(holder)), 20_000);
          killed = { pid, at: Date.now() };
          process.kill(pid, 'SIGKILL');
        }
      }
    } finally {
      report = await wrk.stop();
      // Two more scrapes after the last answer: what the workers counted is in them.
      const seen = scrapes;
      await waitFor('two scrapes after the load', () => (scrapes >= seen + 2 ? true : undefined), 20_000);
      scraping = false;
      await scraper;
    }

    const final = samples(latest);
    const counted = final.get('hitless_http_requests_total{server="load",code="2xx"}') ?? 0;
    assert.ok(killed !== undefined);
    // What the killed worker answered in the second of the kill and the one before (wrk's Lua clock has whole seconds).
    const killSecond = Math.floor(killed.at / 1000);
    const window = report.byPid.filter((entry) => entry.pid === killed.pid && entry.second >= killSecond - Math.ceil(LOSS_WINDOW_MS / 1000)).reduce((sum, entry) => sum + entry.count, 0);
    const ok = report.statuses.get(200) ?? 0;
    t.diagnostic(`wrk: ${report.requests} requests, ${ok} answered 200 (${window} by the killed worker in the seconds of the kill), ${counted} counted, ${scrapes} scrapes`);
    assert.deepEqual(decreases, []);
    assert.ok(scrapes >= RELOADS, `only ${scrapes} scrapes`);
    assert.ok(ok > RELOADS * 100, `only ${ok} requests were answered`);
    assert.equal(ok, report.requests, `wrk had answers other than 200: ${JSON.stringify([...report.statuses])}`);
    // Above: the requests in flight when wrk stopped, answered and counted but not read (one per connection).
    assert.ok(counted <= ok + CONCURRENCY, `${counted} counted, more than the ${ok} wrk made and its ${CONCURRENCY} in flight`);
    // Below: what the killed worker had not reported yet.
    assert.ok(counted >= ok - window, `${counted} counted of ${ok} wrk made: more lost than the ${window} of the in-flight window`);
    assert.ok((final.get('hitless_worker_exits_total{reason="died"}') ?? 0) >= 1, 'the SIGKILL is not among the exits');
    assert.equal(final.get('hitless_reloads_total{result="success"}'), RELOADS);
    assert.equal(final.get('hitless_config_generation'), RELOADS + 1);
    assert.equal(final.get('hitless_config_last_reload_successful'), 1);
    const { status, output } = promtool(['check', 'metrics'], latest);
    assert.equal(status, 0, output);
  });

  it('reports a worker that does not answer in time, keeping its last counts', async () => {
    const before = await scrapeMetrics(socketPath);
    const pid = Number(/hitless_worker_up\{pid="(\d+)",generation="\d+"\} 1/.exec(before.body)?.[1]);
    assert.ok(pid > 0);
    const timeouts = samples(before.body).get('hitless_scrape_worker_timeouts_total') ?? 0;
    const requests = samples(before.body).get('hitless_http_requests_total{server="load",code="2xx"}');
    const labels = `{pid="${pid}",generation="${RELOADS + 1}"}`;
    process.kill(pid, 'SIGSTOP');
    try {
      const stopped = samples((await scrapeMetrics(socketPath)).body);
      assert.equal(stopped.get(`hitless_worker_up${labels}`), 0);
      assert.equal(stopped.get('hitless_scrape_worker_timeouts_total'), timeouts + 1);
      assert.equal(stopped.get('hitless_http_requests_total{server="load",code="2xx"}'), requests);
      // Its counts are there, and how old they are: at least the 500 ms the scrape waited for it.
      const age = stopped.get(`hitless_worker_last_report_age_seconds${labels}`) ?? -1;
      assert.ok(age >= 0.5, `report age ${age}`);
      const again = samples((await scrapeMetrics(socketPath)).body);
      assert.equal(again.get(`hitless_worker_up${labels}`), 0);
      assert.equal(again.get('hitless_scrape_worker_timeouts_total'), timeouts + 2);
      assert.ok((again.get(`hitless_worker_last_report_age_seconds${labels}`) ?? -1) >= age + 0.5, 'the age did not grow while the worker was stopped');
      assert.equal(again.get('hitless_http_requests_total{server="load",code="2xx"}'), requests);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumed = await waitFor('the worker answering again', async () => {
      const text = samples((await scrapeMetrics(socketPath)).body);
      return text.get(`hitless_worker_up${labels}`) === 1 ? text : undefined;
    });
    assert.ok((resumed.get(`hitless_worker_last_report_age_seconds${labels}`) ?? -1) < 0.5);
  });

  it('answers OpenMetrics when Accept asks for it, on the admin socket and from hitless_metrics, as promtool parses it', async () => {
    const accept = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    const admin = await scrapeMetrics(socketPath, accept);
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
    const plain = await scrapeMetrics(socketPath);
    assert.equal(plain.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(promtool(['check', 'metrics'], plain.body).status, 0);
  });
});
