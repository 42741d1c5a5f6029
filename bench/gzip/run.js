#!/usr/bin/env node
// The gzip benchmark: hitless and nginx serving the same 100 KiB text file gzipped (`gzip on`, the
// same `gzip_comp_level`), one worker each, one after the other, with wrk over loopback sending
// Accept-Encoding: gzip. Besides requests/s it reports the CPU time per request of the server's
// processes (utime + stime from /proc/PID/stat over the measured runs, divided by the requests).
// Usage: node bench/gzip/run.js [--duration 10s] [--repeat 3] [--connections 50] [--level 1] ...
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, cpuTicks } from '../lib/cpu.js';
import { findExecutable } from '../lib/executables.js';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { commandVersion, describeMachine } from '../lib/machine.js';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { commonUsage, parseCommonOptions, positiveInteger } from '../lib/options.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { gunzipSync } from 'node:zlib';
import { median } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');
/** The file served: 100 KiB of log-like text, which gzip shrinks several times over. */
const FILES = [{ path: '/100k.txt', size: 100 * 1024, label: '100 KiB text' }];

/** Text of `size` bytes that compresses as logs and pages do (repeats with varying numbers). */
function textOf(size) {
  let text = '';
  for (let i = 0; text.length < size; i++) text += `${new Date(1_700_000_000_000 + i * 7919).toISOString()} GET /api/items/${(i * 2654435761) % 100000} 200 ${(i * 40503) % 9000} "Mozilla/5.0"\n`;
  return Buffer.from(text.slice(0, size), 'latin1');
}

const USAGE = `Usage: node bench/gzip/run.js [options]

  --level <n>           gzip_comp_level of both servers (default 1)
${commonUsage('hitless,nginx')}`;

function parseOptions() {
  const options = parseCommonOptions({ level: { type: 'string', default: '1' } });
  return { ...options, level: positiveInteger(String(options.values.level), '--level') };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/** The gzip_comp_level of both servers, set from --level before anything starts. */
let level = 1;

/**
 * The same configuration for both servers: one worker, no access log, the file's directory, gzip
 * for text/plain at the same level.
 * @param {string} dir
 * @param {string} www
 * @param {number} port
 * @param {string} pidName
 */
function configuration(dir, www, port, pidName) {
  return `worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, pidName)};
events {
    worker_connections 1024;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    types { text/plain txt; }
    gzip on;
    gzip_types text/plain;
    gzip_comp_level ${level};
    server {
        listen ${LOOPBACK}:${port};
        root ${www};
    }
}
`;
}

/**
 * @typedef {object} Server
 * @property {string} name
 * @property {(dir: string, www: string, port: number) => string | undefined} skipReason
 * @property {(group: ProcessGroup, dir: string) => Promise<import('node:child_process').ChildProcess>} start
 * @property {() => Promise<string>} version
 */

/** @type {Server[]} */
const SERVERS = [
  {
    name: 'hitless',
    skipReason(dir, www, port) {
      writeFileSync(join(dir, 'hitless.conf'), configuration(dir, www, port, 'hitless.pid'));
      const test = spawnSync(process.execPath, [join(repoRoot, 'bin', 'hitless'), '-t', '-p', `${dir}/`, '-c', 'hitless.conf'], { encoding: 'utf8', timeout: 30_000 });
      if (test.status === 0) return undefined;
      return `hitless -t refuses the configuration: ${(test.stderr || test.stdout).trim().split('\n').find((line) => /\[emerg\]/.test(line)) ?? `exit ${test.status}`}`;
    },
    start(group, dir) {
      return group.start(process.execPath, [join(repoRoot, 'bin', 'hitless'), '-p', `${dir}/`, '-c', 'hitless.conf'], { logFile: join(dir, 'output.log'), cwd: repoRoot });
    },
    async version() {
      return `hitless (Node ${process.version})`;
    },
  },
  {
    name: 'nginx',
    skipReason(dir, www, port) {
      if (!findExecutable('nginx')) return 'nginx not found (apt-get install nginx-light)';
      writeFileSync(join(dir, 'nginx.conf'), configuration(dir, www, port, 'nginx.pid'));
      return undefined;
    },
    start(group, dir) {
      return group.start(/** @type {string} */ (findExecutable('nginx')), ['-p', `${dir}/`, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { logFile: join(dir, 'output.log') });
    },
    async version() {
      const line = await commandVersion('nginx', ['-v']).catch(() => 'unknown');
      return /\/(\S+)/.exec(line)?.[1] ?? line;
    },
  },
];

/**
 * One GET: the server must send the file's exact bytes with a 200 before it is measured.
 * @param {number} port
 * @param {string} path
 * @param {string} sha256
 */
function checkFile(port, path, sha256) {
  return new Promise((resolvePromise, reject) => {
    const req = get({ host: LOOPBACK, port, path, agent: false, timeout: 10_000, headers: { 'accept-encoding': 'gzip' } }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const gzipped = res.headers['content-encoding'] === 'gzip';
        const got = gzipped ? createHash('sha256').update(gunzipSync(Buffer.concat(chunks))).digest('hex') : '';
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: status ${res.statusCode}`));
        else if (!gzipped) reject(new Error(`GET ${path}: not gzipped`));
        else if (got !== sha256) reject(new Error(`GET ${path}: the body is not the file`));
        else resolvePromise(undefined);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no response within 10 s`)));
    req.on('error', reject);
  });
}

/**
 * The largest VmRSS among the master's children (the one worker), and the master's own, in KiB.
 * @param {number} masterPid
 */
function workerRss(masterPid) {
  const tree = treeRss(masterPid);
  const master = tree.find((p) => p.pid === masterPid)?.rssKiB;
  const workers = tree.filter((p) => p.pid !== masterPid).map((p) => p.rssKiB);
  return { worker: workers.length > 0 ? Math.max(...workers) : undefined, master };
}

async function main() {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  for (const name of options.only ?? []) {
    if (!SERVERS.some((server) => server.name === name)) throw new Error(`Unknown server "${name}" in --only`);
  }
  if (!findExecutable('wrk')) throw new Error('wrk not found (apt-get install wrk)');
  level = options.level;
  const hz = clockTicks();
  const machine = describeMachine();
  log(`${machine.cpus} x ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}`);
  const group = new ProcessGroup();
  const dir = mkdtempSync(join(tmpdir(), 'hitless-bench-gzip-'));
  // Workers of a master started as root run as nobody (nginx's default `user`): they must read the files.
  chmodSync(dir, 0o755);
  const www = join(dir, 'www');
  mkdirSync(www);
  const hashes = new Map();
  for (const file of FILES) {
    const bytes = textOf(file.size);
    writeFileSync(join(www, file.path), bytes);
    hashes.set(file.path, createHash('sha256').update(bytes).digest('hex'));
  }
  const load = { threads: 1, connections: options.connections, seconds: options.seconds, headers: ['Accept-Encoding: gzip'] };
  const rows = [];
  try {
    for (const server of SERVERS.filter((s) => options.only === undefined || options.only.includes(s.name))) {
      const serverDir = join(dir, server.name);
      mkdirSync(serverDir);
      chmodSync(serverDir, 0o755);
      const port = await freePort();
      const skip = server.skipReason(serverDir, www, port);
      if (skip !== undefined) {
        log(`${server.name}: skipped, ${skip}`);
        rows.push({ name: server.name, version: '', file: 'both', result: `skipped: ${skip}` });
        continue;
      }
      const child = await server.start(group, serverDir);
      try {
        await waitForPort(port, { exited: () => child.exitCode !== null });
        const version = await server.version();
        for (const file of FILES) {
          await checkFile(port, file.path, hashes.get(file.path));
          const url = `http://${LOOPBACK}:${port}${file.path}`;
          if (options.warmup > 0) await runWrk(url, { ...load, seconds: options.warmup }, group);
          const runs = [];
          let ticks = 0;
          for (let i = 0; i < options.repeat; i++) {
            const before = child.pid === undefined ? 0 : cpuTicks(child.pid);
            const result = await runWrk(url, load, group);
            ticks += (child.pid === undefined ? 0 : cpuTicks(child.pid)) - before;
            // Errors are reported, not fatal: on a shared machine wrk's 2 s timeout can fire.
            log(`${server.name} ${file.label}: run ${i + 1}/${options.repeat}: ${result.requestsPerSecond.toFixed(0)} requests/s, p99 ${result.p99Ms} ms`);
            runs.push(result);
          }
          const rss = child.pid === undefined ? { worker: undefined, master: undefined } : workerRss(child.pid);
          rows.push({
            name: server.name,
            version,
            file: file.label,
            result: median(runs.map((r) => r.requestsPerSecond)).toFixed(0),
            p50: median(runs.map((r) => r.p50Ms)),
            p99: median(runs.map((r) => r.p99Ms)),
            cpuUs: (ticks / hz) * 1e6 / runs.reduce((sum, r) => sum + r.requests, 0),
            errors: runs.reduce((sum, r) => sum + r.errors, 0),
            rss,
          });
        }
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        log(`${server.name}: failed, ${reason}\n${tailOf(join(serverDir, 'output.log'))}${tailOf(join(serverDir, 'error.log'))}`);
        rows.push({ name: server.name, version: '', file: '', result: `failed: ${reason}` });
      } finally {
        await group.stop(child);
      }
    }
  } finally {
    await group.stopAll();
    if (options.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const mib = (kib) => (kib === undefined ? '' : `${(kib / 1024).toFixed(0)} MiB`);
  const ms = (value) => (value === undefined ? '' : value.toFixed(2));
  const table = [
    '| server | version | file | requests/s | CPU µs/request | errors | p50 ms | p99 ms | worker RSS | master RSS |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map((row) => `| ${row.name} | ${row.version} | ${row.file} | ${row.result} | ${row.cpuUs === undefined ? '' : row.cpuUs.toFixed(0)} | ${row.errors ?? ''} | ${ms(row.p50)} | ${ms(row.p99)} | ${mib(row.rss?.worker)} | ${mib(row.rss?.master)} |`),
  ].join('\n');
  const ratio = FILES.map((file) => {
    const of = (name) => Number(rows.find((row) => row.name === name && row.file === file.label)?.result);
    const value = of('hitless') / of('nginx');
    return Number.isFinite(value) ? `${file.label}: hitless at ${value.toFixed(2)}x nginx` : undefined;
  }).filter(Boolean);
  console.log(`\ngzip, level ${options.level}, wrk -t1 -c${options.connections}, median of ${options.repeat} x ${options.seconds} s\n`);
  console.log(table);
  if (ratio.length > 0) console.log(`\n${ratio.join('; ')}`);
  if (!options.writeDocs || options.only !== undefined) return;
  const body = `Requests per second and CPU time per request for one 100 KiB text file served gzipped:
hitless and nginx with the same configuration (\`gzip on\`, \`gzip_types text/plain\`,
\`gzip_comp_level ${options.level}\`, \`access_log off\`, one worker), one after the other,
\`wrk -t1 -c${options.connections} -H 'Accept-Encoding: gzip'\` over loopback. CPU per request is the
servers' processes' utime + stime (/proc/PID/stat) over the measured runs divided by the requests
they completed. Generated by \`bench/gzip/run.js\`; do not edit by hand. The machine is shared with
other work, so absolute figures move between runs; the ratio is the figure to read.

- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Load: median of ${options.repeat} runs of ${options.seconds} s after a ${options.warmup} s warm-up; wrk, the client, shares the CPUs
- Command: \`cd bench && npm run bench:gzip${options.args.length > 0 ? ` -- ${options.args.join(' ')}` : ''}\`
- RSS: VmRSS at the end of the last run${ratio.length > 0 ? `\n- Ratio: ${ratio.join('; ')}` : ''}

${table}
`;
  writeMarkdownSection(join(repoRoot, 'docs', 'benchmarks.md'), 'gzip', body, '# Benchmarks');
  log('wrote the "gzip" section of docs/benchmarks.md');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
