#!/usr/bin/env node
// The L4 pass-through benchmark: hitless's stream proxy and nginx's stream module in front of the
// same TCP echo upstream, and the upstream alone as the ceiling, measured one after another.
// Each of --connections connections keeps 256 KiB in flight; what comes back through the proxy is
// counted over --duration. Usage: node bench/stream/run.js [--duration 10s] [--connections 8] ...
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { performance } from 'node:perf_hooks';
import { findExecutable } from '../lib/executables.js';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { commandVersion, describeMachine } from '../lib/machine.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { median } from '../lib/stats.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');
/** Debian's libnginx-mod-stream; nginx built with --with-stream (not dynamic) needs no load_module. */
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const IN_FLIGHT = 4;

const USAGE = `Usage: node bench/stream/run.js [options]

  --duration <time>     length of each measured run, e.g. 10s (default 10s)
  --repeat <n>          measured runs per target; the table shows the median (default 3)
  --connections <n>     concurrent connections, each keeping ${IN_FLIGHT} x 64 KiB in flight (default 8)
  --only <names>        comma-separated targets (default: direct,hitless,nginx)
  --no-docs             print the results without writing docs/benchmarks.md
  --keep                keep the generated configurations and logs
  -h, --help            this text`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10s' },
      repeat: { type: 'string', default: '3' },
      connections: { type: 'string', default: '8' },
      only: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const seconds = /^(\d+)s?$/.exec(values.duration);
  if (!seconds || Number(seconds[1]) < 1) throw new Error(`Invalid --duration "${values.duration}": expected whole seconds such as "10s"`);
  const count = (text, flag) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Invalid ${flag} "${text}": expected a positive integer`);
    return n;
  };
  return {
    help: values.help,
    writeDocs: !values['no-docs'],
    args: process.argv.slice(2),
    seconds: Number(seconds[1]),
    repeat: count(values.repeat, '--repeat'),
    connections: count(values.connections, '--connections'),
    only: values.only?.split(',').map((name) => name.trim()).filter(Boolean),
    keep: values.keep,
  };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * Pushes data through `port` on `connections` connections for `seconds` and returns the bytes per
 * second that came back (each byte crossed the proxy twice: to the upstream and back).
 * @param {number} port
 * @param {number} connections
 * @param {number} seconds
 */
async function measure(port, connections, seconds) {
  let received = 0;
  let counting = false;
  const sockets = await Promise.all(Array.from({ length: connections }, () => new Promise((resolvePromise, reject) => {
    const socket = connect({ port, host: LOOPBACK }, () => resolvePromise(socket));
    socket.once('error', reject);
  })));
  for (const socket of sockets) {
    let inFlight = 0;
    const pump = () => {
      while (inFlight < IN_FLIGHT * CHUNK.length) {
        inFlight += CHUNK.length;
        if (!socket.write(CHUNK)) break;
      }
    };
    socket.on('data', (chunk) => {
      if (counting) received += chunk.length;
      inFlight -= chunk.length;
      pump();
    });
    socket.on('drain', pump);
    socket.on('error', () => undefined);
    pump();
  }
  await sleep(500);
  counting = true;
  const started = performance.now();
  await sleep(seconds * 1000);
  counting = false;
  const elapsed = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.destroy();
  if (received === 0) throw new Error('Nothing came back through the proxy');
  return received / elapsed;
}

/**
 * @typedef {object} Target
 * @property {string} name
 * @property {(dir: string, port: number, upstream: number) => string | undefined} skipReason
 * @property {(group: ProcessGroup, dir: string, port: number, upstream: number) => Promise<import('node:child_process').ChildProcess | undefined>} start
 * @property {() => Promise<string>} version
 */

/** @type {Target[]} */
const TARGETS = [
  {
    name: 'direct',
    skipReason: () => undefined,
    start: async () => undefined,
    version: async () => `upstream alone (Node ${process.version})`,
  },
  {
    name: 'hitless',
    skipReason: () => undefined,
    async start(group, dir, port, upstream) {
      writeFileSync(join(dir, 'hitless.conf'), `worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'hitless.pid')};
events {}
stream {
    server { listen ${LOOPBACK}:${port}; proxy_pass ${LOOPBACK}:${upstream}; }
}
`);
      return group.start(process.execPath, [join(repoRoot, 'bin', 'hitless'), '-p', `${dir}/`, '-c', 'hitless.conf'], { logFile: join(dir, 'output.log'), cwd: repoRoot });
    },
    async version() {
      return `hitless (Node ${process.version})`;
    },
  },
  {
    name: 'nginx',
    skipReason() {
      if (!findExecutable('nginx')) return 'nginx not found (apt-get install nginx-light libnginx-mod-stream)';
      if (!existsSync(NGINX_STREAM_MODULE)) return `nginx's stream module not found at ${NGINX_STREAM_MODULE} (apt-get install libnginx-mod-stream)`;
      return undefined;
    },
    async start(group, dir, port, upstream) {
      writeFileSync(join(dir, 'nginx.conf'), `load_module ${NGINX_STREAM_MODULE};
worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
events {}
stream {
    server { listen ${LOOPBACK}:${port}; proxy_pass ${LOOPBACK}:${upstream}; }
}
`);
      return group.start(/** @type {string} */ (findExecutable('nginx')), ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { logFile: join(dir, 'output.log') });
    },
    async version() {
      const line = await commandVersion('nginx', ['-v']).catch(() => 'unknown');
      return /\/(\S+)/.exec(line)?.[1] ?? line;
    },
  },
];

async function main() {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  for (const name of options.only ?? []) {
    if (!TARGETS.some((target) => target.name === name)) throw new Error(`Unknown target "${name}" in --only`);
  }
  const machine = describeMachine();
  log(`${machine.cpus} x ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}`);
  const group = new ProcessGroup();
  const dir = mkdtempSync(join(tmpdir(), 'hitless-bench-stream-'));
  const rows = [];
  try {
    const upstreamPort = await freePort();
    const upstream = await group.start(process.execPath, [join(benchDir, 'stream', 'echo-upstream.js'), String(upstreamPort)], { logFile: join(dir, 'upstream.log') });
    await waitForPort(upstreamPort, { exited: () => upstream.exitCode !== null });
    for (const target of TARGETS.filter((t) => options.only === undefined || options.only.includes(t.name))) {
      const targetDir = join(dir, target.name);
      mkdirSync(targetDir);
      const port = target.name === 'direct' ? upstreamPort : await freePort();
      const skip = target.skipReason(targetDir, port, upstreamPort);
      if (skip !== undefined) {
        log(`${target.name}: skipped, ${skip}`);
        rows.push({ name: target.name, version: '', result: `skipped: ${skip}` });
        continue;
      }
      const child = await target.start(group, targetDir, port, upstreamPort);
      try {
        await waitForPort(port, { exited: () => child !== undefined && child.exitCode !== null });
        const runs = [];
        for (let i = 0; i < options.repeat; i++) {
          const rate = await measure(port, options.connections, options.seconds);
          log(`${target.name}: run ${i + 1}/${options.repeat}: ${(rate / 2 ** 20).toFixed(1)} MiB/s back`);
          runs.push(rate);
        }
        const rss = child?.pid === undefined ? undefined : treeRss(child.pid).reduce((sum, p) => sum + p.rssKiB, 0);
        rows.push({ name: target.name, version: await target.version(), result: `${(median(runs) / 2 ** 20).toFixed(1)} MiB/s`, rss });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        log(`${target.name}: failed, ${reason}\n${tailOf(join(targetDir, 'output.log'))}${tailOf(join(targetDir, 'error.log'))}`);
        rows.push({ name: target.name, version: '', result: `failed: ${reason}` });
      } finally {
        if (child !== undefined) await group.stop(child);
      }
    }
  } finally {
    await group.stopAll();
    if (options.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const table = [
    '| target | version | throughput | RSS |',
    '|---|---|--:|--:|',
    ...rows.map((row) => `| ${row.name} | ${row.version} | ${row.result} | ${row.rss === undefined ? '' : `${(row.rss / 1024).toFixed(0)} MiB`} |`),
  ].join('\n');
  console.log(`\nTCP pass-through, ${options.connections} connections, median of ${options.repeat} x ${options.seconds} s (bytes echoed back through the proxy)\n`);
  console.log(table);
  if (!options.writeDocs || options.only !== undefined) return;
  const body = `Bytes per second echoed back through a TCP pass-through (\`stream { server { proxy_pass ...; } }\`),
one worker each, in front of the same echo upstream (bench/stream/echo-upstream.js). Generated by
\`bench/stream/run.js\`; do not edit by hand.

- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Load: ${options.connections} connections, each keeping ${IN_FLIGHT} x 64 KiB in flight; median of ${options.repeat} runs of ${options.seconds} s
- Command: \`cd bench && npm run bench:stream${options.args.length > 0 ? ` -- ${options.args.join(' ')}` : ''}\`
- \`direct\` is the upstream alone, the ceiling; the echo upstream, the client and the proxy share the CPUs.

${table}
`;
  writeMarkdownSection(join(benchDir, '..', 'docs', 'benchmarks.md'), 'L4 pass-through', body, '# Benchmarks');
  log('wrote the "L4 pass-through" section of docs/benchmarks.md');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
