#!/usr/bin/env node
// The FastCGI benchmark: a PHP "hello" page through hitless and through nginx, one after the other,
// to the same PHP-FPM pool (Debian's php8.2-fpm, started here with opcache on a unix socket), one
// worker each, with the same configuration (Debian's fastcgi.conf, `fastcgi_pass unix:`), measured
// with wrk over loopback. Besides requests/s it reports the CPU time per request of the server's
// processes and of PHP-FPM's (utime + stime from /proc/PID/stat over the measured runs).
// Usage: node bench/fastcgi/run.js [--duration 10s] [--repeat 3] [--connections 50] [--children 4] ...
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../lib/executables.js';
import { clockTicks, cpuTicks } from '../lib/cpu.js';
import { ForeignCpuSampler } from '../lib/foreign-cpu.js';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { commandVersion, describeMachine } from '../lib/machine.js';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { commonUsage, parseCommonOptions, positiveInteger } from '../lib/options.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { median } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');
/** Debian's PHP-FPM; the first of these names found on PATH or in the sbin folders. */
const PHP_FPM_NAMES = ['php-fpm8.2', 'php-fpm'];
/** The FastCGI parameters both servers send: Debian's, as its default site includes them. */
const FASTCGI_CONF = '/etc/nginx/fastcgi.conf';
/** The page measured, and what it must answer. */
const PAGE = { path: '/hello.php', script: '<?php echo "hello\\n";\n', body: 'hello\n' };

const USAGE = `Usage: node bench/fastcgi/run.js [options]

  --children <n>        PHP-FPM's pm.max_children, pm = static (default 4)
${commonUsage('hitless,nginx')}`;

function parseOptions() {
  const options = parseCommonOptions({ children: { type: 'string', default: '4' } });
  return { ...options, children: positiveInteger(String(options.values.children), '--children') };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * The same configuration for both servers: one worker, no access log, the page's directory, and
 * PHP as Debian's default site passes it (fastcgi.conf, `fastcgi_pass unix:`).
 * @param {string} dir
 * @param {string} www
 * @param {string} socket
 * @param {number} port
 * @param {string} pidName
 */
function configuration(dir, www, socket, port, pidName) {
  return `worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, pidName)};
events {
    worker_connections 1024;
}
http {
    access_log off;
    server {
        listen ${LOOPBACK}:${port};
        root ${www};
        location ~ \\.php$ {
            include fastcgi.conf;
            fastcgi_pass unix:${socket};
        }
    }
}
`;
}

/**
 * PHP-FPM's configuration: one static pool on a unix socket; as root, its workers run as nobody.
 * @param {string} dir
 * @param {string} socket
 * @param {number} children
 */
function fpmConfiguration(dir, socket, children) {
  const user = process.getuid?.() === 0 ? 'user = nobody\ngroup = nogroup\n' : '';
  return `[global]
pid = ${join(dir, 'php-fpm.pid')}
error_log = ${join(dir, 'php-fpm.log')}
daemonize = no
[hello]
${user}listen = ${socket}
listen.mode = 0666
pm = static
pm.max_children = ${children}
`;
}

/**
 * Starts PHP-FPM (opcache on, no php.ini) and resolves once its log says it is ready (at most 10 s).
 * @param {ProcessGroup} group
 * @param {string} binary
 * @param {string} dir
 */
async function startFpm(group, binary, dir) {
  const root = process.getuid?.() === 0 ? ['-R'] : [];
  const child = await group.start(binary, ['-F', '-n', '-d', 'zend_extension=opcache', '-d', 'opcache.enable=1', ...root, '-y', join(dir, 'php-fpm.conf')], { logFile: join(dir, 'php-fpm.output.log') });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (existsSync(join(dir, 'php-fpm.log')) && readFileSync(join(dir, 'php-fpm.log'), 'utf8').includes('ready to handle connections')) return child;
    if (child.exitCode !== null) throw new Error(`php-fpm exited: ${tailOf(join(dir, 'php-fpm.log'))}${tailOf(join(dir, 'php-fpm.output.log'))}`);
    if (Date.now() > deadline) throw new Error(`php-fpm is not ready after 10 s: ${tailOf(join(dir, 'php-fpm.log'))}`);
    await sleep(50);
  }
}

/**
 * @typedef {object} Server
 * @property {string} name
 * @property {(dir: string, www: string, socket: string, port: number) => string | undefined} skipReason
 * @property {(group: ProcessGroup, dir: string) => Promise<import('node:child_process').ChildProcess>} start
 * @property {() => Promise<string>} version
 */

/** @type {Server[]} */
const SERVERS = [
  {
    name: 'hitless',
    skipReason(dir, www, socket, port) {
      writeFileSync(join(dir, 'hitless.conf'), configuration(dir, www, socket, port, 'hitless.pid'));
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
    skipReason(dir, www, socket, port) {
      if (!findExecutable('nginx')) return 'nginx not found (apt-get install nginx-light)';
      writeFileSync(join(dir, 'nginx.conf'), configuration(dir, www, socket, port, 'nginx.pid'));
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
 * One GET: the server must answer the page with a 200 and PHP's output before it is measured.
 * @param {number} port
 */
function checkPage(port) {
  return new Promise((resolvePromise, reject) => {
    const req = get({ host: LOOPBACK, port, path: PAGE.path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${PAGE.path}: status ${res.statusCode}: ${body.slice(0, 200)}`));
        else if (body !== PAGE.body) reject(new Error(`GET ${PAGE.path}: ${JSON.stringify(body.slice(0, 200))} is not PHP's output`));
        else resolvePromise(undefined);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${PAGE.path}: no response within 10 s`)));
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
  const fpmBinary = PHP_FPM_NAMES.map((name) => findExecutable(name)).find(Boolean);
  if (fpmBinary === undefined) throw new Error('php-fpm not found (apt-get install php8.2-fpm)');
  if (!existsSync(FASTCGI_CONF)) throw new Error(`${FASTCGI_CONF} not found (apt-get install nginx-common)`);
  const hz = clockTicks();
  const machine = describeMachine();
  log(`${machine.cpus} x ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}`);
  const group = new ProcessGroup();
  const dir = mkdtempSync(join(tmpdir(), 'hitless-bench-fastcgi-'));
  // PHP-FPM's and nginx's workers run as nobody: they must read the page and reach the socket.
  chmodSync(dir, 0o755);
  const www = join(dir, 'www');
  mkdirSync(www);
  writeFileSync(join(www, PAGE.path), PAGE.script);
  const socket = join(dir, 'php-fpm.sock');
  writeFileSync(join(dir, 'php-fpm.conf'), fpmConfiguration(dir, socket, options.children));
  const load = { threads: 1, connections: options.connections, seconds: options.seconds };
  const rows = [];
  let fpmVersion = '';
  // What processes this run did not start used meanwhile: the figures are read against it.
  const sampler = new ForeignCpuSampler((pid, pgrp) => pid === process.pid || group.ownsProcessGroup(pgrp));
  const otherLoad = { percent: 0, top: /** @type {string[]} */ ([]) };
  try {
    const fpm = await startFpm(group, fpmBinary, dir);
    fpmVersion = /PHP (\S+)/.exec((await commandVersion(fpmBinary, ['-v'])) ?? '')?.[1] ?? 'unknown';
    for (const server of SERVERS.filter((s) => options.only === undefined || options.only.includes(s.name))) {
      const serverDir = join(dir, server.name);
      mkdirSync(serverDir);
      chmodSync(serverDir, 0o755);
      copyFileSync(FASTCGI_CONF, join(serverDir, 'fastcgi.conf'));
      const port = await freePort();
      const skip = server.skipReason(serverDir, www, socket, port);
      if (skip !== undefined) {
        log(`${server.name}: skipped, ${skip}`);
        rows.push({ name: server.name, version: '', result: `skipped: ${skip}` });
        continue;
      }
      const child = await server.start(group, serverDir);
      try {
        await waitForPort(port, { exited: () => child.exitCode !== null });
        const version = await server.version();
        await checkPage(port);
        const url = `http://${LOOPBACK}:${port}${PAGE.path}`;
        if (options.warmup > 0) await runWrk(url, { ...load, seconds: options.warmup }, group);
        const runs = [];
        let ticks = 0;
        let fpmTicks = 0;
        for (let i = 0; i < options.repeat; i++) {
          const before = { server: child.pid === undefined ? 0 : cpuTicks(child.pid), fpm: fpm.pid === undefined ? 0 : cpuTicks(fpm.pid) };
          sampler.start();
          const result = await runWrk(url, load, group);
          const others = sampler.stop();
          ticks += (child.pid === undefined ? 0 : cpuTicks(child.pid)) - before.server;
          fpmTicks += (fpm.pid === undefined ? 0 : cpuTicks(fpm.pid)) - before.fpm;
          if (others.percent > otherLoad.percent) Object.assign(otherLoad, others);
          // Errors are reported, not fatal: on a shared machine wrk's 2 s timeout can fire.
          log(`${server.name}: run ${i + 1}/${options.repeat}: ${result.requestsPerSecond.toFixed(0)} requests/s, p99 ${result.p99Ms} ms, ${result.errors} errors; other processes ${Math.round(others.percent)}% of a CPU`);
          runs.push(result);
        }
        const requests = runs.reduce((sum, r) => sum + r.requests, 0);
        rows.push({
          name: server.name,
          version,
          result: median(runs.map((r) => r.requestsPerSecond)).toFixed(0),
          p50: median(runs.map((r) => r.p50Ms)),
          p99: median(runs.map((r) => r.p99Ms)),
          cpuUs: ((ticks / hz) * 1e6) / requests,
          fpmCpuUs: ((fpmTicks / hz) * 1e6) / requests,
          errors: runs.reduce((sum, r) => sum + r.errors, 0),
          rss: child.pid === undefined ? { worker: undefined, master: undefined } : workerRss(child.pid),
        });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        log(`${server.name}: failed, ${reason}\n${tailOf(join(serverDir, 'output.log'))}${tailOf(join(serverDir, 'error.log'))}`);
        rows.push({ name: server.name, version: '', result: `failed: ${reason}` });
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
  const us = (value) => (value === undefined ? '' : value.toFixed(0));
  const table = [
    '| server | version | requests/s | server CPU µs/request | PHP-FPM CPU µs/request | errors | p50 ms | p99 ms | worker RSS | master RSS |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map((row) => `| ${row.name} | ${row.version} | ${row.result} | ${us(row.cpuUs)} | ${us(row.fpmCpuUs)} | ${row.errors ?? ''} | ${ms(row.p50)} | ${ms(row.p99)} | ${mib(row.rss?.worker)} | ${mib(row.rss?.master)} |`),
  ].join('\n');
  const of = (name) => Number(rows.find((row) => row.name === name)?.result);
  const value = of('hitless') / of('nginx');
  const ratio = Number.isFinite(value) ? `hitless at ${value.toFixed(2)}x nginx` : undefined;
  console.log(`\nPHP hello through FastCGI (PHP ${fpmVersion}, ${options.children} PHP-FPM workers), wrk -t1 -c${options.connections}, median of ${options.repeat} x ${options.seconds} s\n`);
  console.log(table);
  if (ratio !== undefined) console.log(`\n${ratio}`);
  if (!options.writeDocs || options.only !== undefined) return;
  const body = `Requests per second for a PHP page that prints \`hello\`, through hitless and through nginx, one after
the other, to the same PHP-FPM pool (PHP ${fpmVersion}, opcache on, \`pm = static\`,
\`pm.max_children = ${options.children}\`, a unix socket), both with the same configuration (Debian's
\`fastcgi.conf\`, \`fastcgi_pass unix:\`, \`access_log off\`, one worker), \`wrk -t1 -c${options.connections}\` over
loopback. CPU per request is utime + stime (/proc/PID/stat) over the measured runs divided by the
requests completed, for the server's processes and for PHP-FPM's. Generated by
\`bench/fastcgi/run.js\`; do not edit by hand. PHP-FPM, the server and wrk share the CPUs.

- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Load: median of ${options.repeat} runs of ${options.seconds} s after a ${options.warmup} s warm-up
- Other load: other processes used at most ${Math.round(otherLoad.percent)}% of one CPU during a measured run${otherLoad.top.length > 0 ? ` (${otherLoad.top.join(', ')})` : ''}
- Command: \`cd bench && npm run bench:fastcgi${options.args.length > 0 ? ` -- ${options.args.join(' ')}` : ''}\`
- RSS: VmRSS at the end of the last run${ratio !== undefined ? `\n- Ratio: ${ratio}` : ''}

${table}

Where hitless's time goes (perf on the worker, this configuration, each sample given to the innermost
hitless function on its stack): opening the PHP-FPM connection (\`net.connect\`: a net.Socket, a
Pipe handle, \`socket()\` and \`connect()\`) 17%, the response's \`writev()\` to the client 15%, closing
the PHP-FPM connection at FCGI_END_REQUEST 10% (the close comes in the same callback that reads
END_REQUEST: strace shows PHP-FPM's \`recvfrom()\` after its \`shutdown()\` returning 0 at once),
the request's \`writev()\` to PHP-FPM 4%, FastCGI's own code (parameters, records, the CGI head) 9%,
libuv and V8 outside hitless's frames (epoll, reads, GC) 32%. A bare Node 20 client that only opens
a unix socket to the same pool per request, writes the same request, reads to END_REQUEST and closes
costs 31 to 50 µs of CPU per request, and hitless's HTTP side alone (\`return 200\` on the same
worker) 15 µs: about 50 to 65 µs before any FastCGI work, where nginx spends about 35 µs in all.
Node 20 has no way to open a connection without a net.Socket (a Duplex stream, its handle and
async ids per connection) and no way to write on a pipe in the turn its \`connect()\` succeeded
(libuv reports it on the next poll; net.Socket holds writes until \`'connect'\`); the \`onread\`
option only skips the reading side's stream. Without \`fastcgi_keep_conn\` (which changes what
PHP-FPM sees, so the benchmark does not set it) 0.8x nginx is out of reach.
`;
  writeMarkdownSection(join(repoRoot, 'docs', 'benchmarks.md'), 'PHP through FastCGI', body, '# Benchmarks');
  log('wrote the "PHP through FastCGI" section of docs/benchmarks.md');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
