#!/usr/bin/env node
// The static file benchmark: hitless and nginx serving the same two files from the same directory
// (`root`, `sendfile on`), one worker each, measured one after the other with wrk over loopback:
// a 1 KiB file (the request path dominates) and a 1 MiB file (the copy to the socket dominates).
// Usage: node bench/static/run.js [--duration 10s] [--repeat 3] [--connections 50] ...
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../lib/executables.js';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { commandVersion, describeMachine } from '../lib/machine.js';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { commonUsage, parseCommonOptions } from '../lib/options.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { median } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');
/** The files served, by URL path: random bytes, so that nothing on the way can compress them. */
const FILES = [
  { path: '/1k.bin', size: 1024, label: '1 KiB' },
  { path: '/1m.bin', size: 1024 * 1024, label: '1 MiB' },
];

const USAGE = `Usage: node bench/static/run.js [options]

${commonUsage('hitless,nginx')}`;

function parseOptions() {
  const options = parseCommonOptions({});
  return { ...options };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * The same configuration for both servers: one worker, no access log (nginx's would cost a write
 * per request that hitless's might not, or the other way round), sendfile, the files' directory.
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
    const req = get({ host: LOOPBACK, port, path, agent: false, timeout: 10_000 }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (chunk) => hash.update(chunk));
      res.on('end', () => {
        const got = hash.digest('hex');
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: status ${res.statusCode}`));
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
  const machine = describeMachine();
  log(`${machine.cpus} x ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}`);
  const group = new ProcessGroup();
  const dir = mkdtempSync(join(tmpdir(), 'hitless-bench-static-'));
  // Workers of a master started as root run as nobody (nginx's default `user`): they must read the files.
  chmodSync(dir, 0o755);
  const www = join(dir, 'www');
  mkdirSync(www);
  const hashes = new Map();
  for (const file of FILES) {
    const bytes = randomBytes(file.size);
    writeFileSync(join(www, file.path), bytes);
    hashes.set(file.path, createHash('sha256').update(bytes).digest('hex'));
  }
  const load = { threads: 1, connections: options.connections, seconds: options.seconds };
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
          for (let i = 0; i < options.repeat; i++) {
            const result = await runWrk(url, load, group);
            if (result.errors > 0) throw new Error(`${result.errors} errors in a run of ${file.label}`);
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
    '| server | version | file | requests/s | p50 ms | p99 ms | worker RSS | master RSS |',
    '|---|---|---|--:|--:|--:|--:|--:|',
    ...rows.map((row) => `| ${row.name} | ${row.version} | ${row.file} | ${row.result} | ${ms(row.p50)} | ${ms(row.p99)} | ${mib(row.rss?.worker)} | ${mib(row.rss?.master)} |`),
  ].join('\n');
  const ratio = FILES.map((file) => {
    const of = (name) => Number(rows.find((row) => row.name === name && row.file === file.label)?.result);
    const value = of('hitless') / of('nginx');
    return Number.isFinite(value) ? `${file.label}: hitless at ${value.toFixed(2)}x nginx` : undefined;
  }).filter(Boolean);
  console.log(`\nStatic files, wrk -t1 -c${options.connections}, median of ${options.repeat} x ${options.seconds} s\n`);
  console.log(table);
  if (ratio.length > 0) console.log(`\n${ratio.join('; ')}`);
  if (!options.writeDocs || options.only !== undefined) return;
  const body = `Requests per second for one static file, hitless and nginx serving the same directory with the
same configuration (\`root\`, \`sendfile on\`, \`tcp_nopush on\`, \`access_log off\`, one worker), one after
the other, \`wrk -t1 -c${options.connections}\` over loopback. A 1 KiB file measures the request path, a
1 MiB file the copy to the socket. Generated by \`bench/static/run.js\`; do not edit by hand.
Issue 13's target: 1 KiB at 0.5x nginx or better.

- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Load: median of ${options.repeat} runs of ${options.seconds} s after a ${options.warmup} s warm-up; wrk, the client, shares the CPUs
- Command: \`cd bench && npm run bench:static${options.args.length > 0 ? ` -- ${options.args.join(' ')}` : ''}\`
- RSS: VmRSS at the end of the file's last run${ratio.length > 0 ? `\n- Ratio: ${ratio.join('; ')}` : ''}

${table}
`;
  writeMarkdownSection(join(repoRoot, 'docs', 'benchmarks.md'), 'Static files', body, '# Benchmarks');
  log('wrote the "Static files" section of docs/benchmarks.md');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
