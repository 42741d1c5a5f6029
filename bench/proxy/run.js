#!/usr/bin/env node
// The L7 proxy benchmark: hitless, nginx, HAProxy, @fastify/http-proxy and http-proxy in front of
// the same nginx upstream, measured one after another with wrk, in one run on one machine.
// Usage: node bench/proxy/run.js [--duration 10s] [--repeat 3] ... (see --help)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureDependencies } from '../lib/dependencies.js';
import { findExecutable } from '../lib/executables.js';
import { ForeignCpuSampler, QUIET_CPU_PERCENT, waitForQuietMachine } from '../lib/foreign-cpu.js';
import { LOOPBACK, freePort, httpGet, waitForPort } from '../lib/loopback.js';
import { commandVersion, describeMachine } from '../lib/machine.js';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { median } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';
import { UPSTREAM_BODY, upstreamNginxConf } from './configs.js';
import { docsSection, ratios, resultsTable } from './report.js';
import { NODE_PEERS, TARGETS, startNginx } from './targets.js';

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(benchDir, '..');

const USAGE = `Usage: node bench/proxy/run.js [options]   (or: cd bench && npm run bench -- [options])

  --duration <time>       length of each measured wrk run, e.g. 10s, 1m (default 10s)
  --repeat <n>            measured runs per proxy; the table shows the median (default 3)
  --warmup <time>         unmeasured wrk run before the measured ones (default 2s)
  --connections <n>       wrk -c (default 50)
  --threads <n>           wrk -t (default 1)
  --quiet-timeout <time>  how long in all to wait, for each proxy, for other processes to leave
                          the CPUs alone (default 30s; then it measures anyway and says so)
  --only <names>          comma-separated proxies to run (default all: ${TARGETS.map((t) => t.name).join(', ')})
  --no-docs               print the results without writing docs/benchmarks.md
  --keep                  keep the folder of generated configurations and logs
  -h, --help              this text`;

/**
 * Seconds from "10", "10s" or "1m"; wrk takes whole seconds.
 * @param {string} text
 * @param {string} flag
 * @param {number} min
 */
function parseSeconds(text, flag, min) {
  const match = /^(\d+)(s|m)?$/.exec(text);
  const seconds = match ? Number(match[1]) * (match[2] === 'm' ? 60 : 1) : NaN;
  if (!(seconds >= min)) throw new Error(`Invalid ${flag} "${text}": expected whole seconds such as "10s"`);
  return seconds;
}

/**
 * @param {string} text
 * @param {string} flag
 */
function parseCount(text, flag) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Invalid ${flag} "${text}": expected a positive integer`);
  return n;
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10s' },
      repeat: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '2s' },
      'quiet-timeout': { type: 'string', default: '30s' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string', default: '1' },
      only: { type: 'string' },
      'no-docs': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const only = values.only?.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of only ?? []) {
    if (!TARGETS.some((t) => t.name === name)) throw new Error(`Unknown proxy "${name}" in --only`);
  }
  return {
    help: values.help,
    settings: {
      seconds: parseSeconds(values.duration, '--duration', 1),
      repeat: parseCount(values.repeat, '--repeat'),
      warmupSeconds: parseSeconds(values.warmup, '--warmup', 0),
      quietTimeoutSeconds: parseSeconds(values['quiet-timeout'], '--quiet-timeout', 0),
      threads: parseCount(values.threads, '--threads'),
      connections: parseCount(values.connections, '--connections'),
    },
    only,
    writeDocs: !values['no-docs'],
    keep: values.keep,
  };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/** How the run was started, for the docs: from bench/ through npm, or with node from the root. */
function invocation() {
  const args = process.argv.slice(2).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `cd bench && npm run bench${args ? ` -- ${args}` : ''}`;
  return `node bench/proxy/run.js${args ? ` ${args}` : ''}`;
}

/**
 * Starts the upstream nginx and checks that it answers the 12 bytes every proxy will forward.
 * @param {ProcessGroup} group
 * @param {string} dir
 */
async function startUpstream(group, dir) {
  mkdirSync(dir);
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), upstreamNginxConf(dir, port));
  const child = await startNginx(group, dir);
  try {
    await waitForPort(port, { exited: () => child.exitCode !== null || child.signalCode !== null });
    await expectHelloWorld(port, 'the upstream');
  } catch (err) {
    throw new Error(`The upstream nginx did not start: ${errorMessage(err)}\n${tailOf(join(dir, 'output.log'))}${tailOf(join(dir, 'error.log'))}`);
  }
  return { port, child };
}

/**
 * @param {number} port
 * @param {string} what
 */
async function expectHelloWorld(port, what) {
  const { status, body } = await httpGet(port);
  if (status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(`GET / through ${what} answered ${status} ${JSON.stringify(body)}, not 200 ${JSON.stringify(UPSTREAM_BODY)}`);
  }
}

/** @param {unknown} err */
function errorMessage(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Waits for a quiet machine, warms the proxy up, then runs wrk until `repeat` runs are measured.
 * A run during which other processes took a noticeable share of the CPUs is discarded and made
 * again after the machine is quiet, up to `repeat` times per proxy; past that it is kept, and the
 * docs say so.
 * @param {string} name
 * @param {import('./targets.js').TargetContext} ctx
 * @param {import('./report.js').Settings} settings
 * @returns {Promise<import('./report.js').MeasuredRun[]>}
 */
async function measureRuns(name, ctx, settings) {
  const url = `http://${LOOPBACK}:${ctx.port}/`;
  const load = { threads: settings.threads, connections: settings.connections };
  const sampler = new ForeignCpuSampler((pid, pgrp) => pid === process.pid || ctx.group.ownsProcessGroup(pgrp));
  // One budget per proxy for all its waits, so that a busy machine delays a run by a bounded time.
  const deadline = Date.now() + settings.quietTimeoutSeconds * 1000;
  const waitForQuiet = async () => {
    const timeoutSeconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    const before = await waitForQuietMachine(sampler, {
      thresholdPercent: QUIET_CPU_PERCENT,
      timeoutSeconds,
      onBusy: (busy) => log(`${name}: waiting up to ${timeoutSeconds} s for a quiet machine: ` +
        `other processes use ${Math.round(busy.percent)}% of a CPU (${busy.top.join(', ')})`),
    });
    if (!before.quiet) log(`${name}: measuring on a busy machine (${before.top.join(', ')})`);
  };

  await waitForQuiet();
  if (settings.warmupSeconds > 0) {
    log(`${name}: warming up for ${settings.warmupSeconds} s`);
    await runWrk(url, { ...load, seconds: settings.warmupSeconds }, ctx.group);
  }
  /** @type {import('./report.js').MeasuredRun[]} */
  const runs = [];
  let retries = settings.repeat;
  while (runs.length < settings.repeat) {
    sampler.start();
    const run = await runWrk(url, { ...load, seconds: settings.seconds }, ctx.group);
    const foreignCpu = sampler.stop();
    const others = `${Math.round(foreignCpu.percent)}% of a CPU${foreignCpu.top.length ? ` (${foreignCpu.top.join(', ')})` : ''}`;
    log(`${name}: run ${runs.length + 1}/${settings.repeat}: ${Math.round(run.requestsPerSecond)} requests/s, ` +
      `p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, ${run.errors} errors; other processes ${others}`);
    if (foreignCpu.percent >= QUIET_CPU_PERCENT && retries > 0) {
      retries--;
      log(`${name}: run discarded, other processes used ${others}`);
      await waitForQuiet();
      continue;
    }
    runs.push({ ...run, foreignCpu });
  }
  return runs;
}

/**
 * Starts one proxy, warms it up, measures it `repeat` times, reads its RSS and stops it.
 * @param {import('./targets.js').Target} target
 * @param {import('./targets.js').TargetContext} ctx
 * @param {import('./report.js').Settings} settings
 * @returns {Promise<import('./report.js').TargetResult>}
 */
async function measureTarget(target, ctx, settings) {
  const version = await target.version(ctx).catch(() => 'unknown');
  const base = { name: target.name, version, processes: target.processes, runs: [] };
  const skipReason = await target.skipReason(ctx);
  if (skipReason) {
    // The run's folder is temporary: a path into it would mean nothing in the docs.
    const reason = skipReason.replaceAll(`${ctx.dir}/`, '');
    log(`${target.name}: skipped, ${reason}`);
    return { ...base, status: 'skipped', reason };
  }
  log(`${target.name} ${version}: starting on ${LOOPBACK}:${ctx.port}`);
  /** @type {import('node:child_process').ChildProcess} */
  let child;
  try {
    child = await target.start(ctx);
  } catch (err) {
    log(`${target.name}: failed to start, ${errorMessage(err)}`);
    return { ...base, status: 'failed', reason: `cannot start: ${errorMessage(err)}` };
  }
  try {
    await waitForPort(ctx.port, { exited: () => child.exitCode !== null || child.signalCode !== null });
    await expectHelloWorld(ctx.port, target.name);
    const runs = await measureRuns(target.name, ctx, settings);
    const rss = treeRss(/** @type {number} */ (child.pid));
    return {
      ...base,
      status: 'measured',
      runs,
      requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
      p50Ms: median(runs.map((r) => r.p50Ms)),
      p99Ms: median(runs.map((r) => r.p99Ms)),
      rssKiB: rss.reduce((sum, p) => sum + p.rssKiB, 0),
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
    };
  } catch (err) {
    const reason = errorMessage(err);
    log(`${target.name}: failed, ${reason}\n${tailOf(join(ctx.dir, 'output.log'))}`);
    return { ...base, status: 'failed', reason };
  } finally {
    await ctx.group.stop(child);
  }
}

async function main() {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const { settings } = options;
  for (const tool of ['wrk', 'nginx']) {
    if (!findExecutable(tool)) {
      throw new Error(`${tool} not found: the benchmark needs it (${tool === 'wrk' ? 'apt-get install wrk' : 'apt-get install nginx-light, for the upstream'})`);
    }
  }
  ensureDependencies(benchDir);

  const targets = TARGETS.filter((t) => !options.only || options.only.includes(t.name));
  const perTarget = settings.warmupSeconds + settings.seconds * settings.repeat;
  log(`bench: ${targets.map((t) => t.name).join(', ')}: about ${perTarget} s each, one after another`);

  const group = new ProcessGroup();
  const runDir = mkdtempSync(join(tmpdir(), 'hitless-bench-proxy-'));
  // Also on Ctrl-C, when ProcessGroup ends the process before the finally block below can run.
  const removeRunDir = () => options.keep || rmSync(runDir, { recursive: true, force: true });
  process.on('exit', removeRunDir);
  /** @type {import('./report.js').TargetResult[]} */
  const results = [];
  try {
    const upstream = await startUpstream(group, join(runDir, 'upstream'));
    log(`upstream: nginx on ${LOOPBACK}:${upstream.port}`);
    for (const target of targets) {
      const dir = join(runDir, target.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, ''));
      mkdirSync(dir);
      const ctx = { group, dir, port: await freePort(), upstreamPort: upstream.port, repoRoot, benchDir };
      results.push(await measureTarget(target, ctx, settings));
    }
  } finally {
    await group.stopAll();
    removeRunDir();
    process.off('exit', removeRunDir);
    if (options.keep) log(`bench: configurations and logs kept in ${runDir}`);
  }

  const nginxPath = /** @type {string} */ (findExecutable('nginx'));
  const haproxyPath = findExecutable('haproxy');
  const tools = {
    nginx: /\/(\S+)/.exec((await commandVersion(nginxPath, ['-v'])) ?? '')?.[1] ?? 'unknown',
    haproxy: haproxyPath ? /version (\S+)/.exec((await commandVersion(haproxyPath, ['-v'])) ?? '')?.[1] ?? 'unknown' : 'not installed',
    wrk: (await commandVersion('wrk', ['-v'])) ?? 'wrk',
  };
  const run = {
    results,
    nodePeers: NODE_PEERS,
    settings,
    machine: describeMachine(),
    tools,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: invocation(),
  };

  console.log(`\n${resultsTable(results)}\n\n${ratios(results, NODE_PEERS)}\n`);
  const resultsDir = join(benchDir, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, `proxy-${run.date.replace(/:/g, '-')}.json`);
  writeFileSync(resultsFile, `${JSON.stringify(run, null, 2)}\n`);
  log(`bench: raw results in ${resultsFile}`);
  if (options.writeDocs) {
    const docs = join(repoRoot, 'docs', 'benchmarks.md');
    writeMarkdownSection(docs, 'L7 proxy', docsSection(run),
      '# Benchmarks\n\nMeasured by the scripts in bench/, each of which rewrites its own section below.');
    log(`bench: wrote the "L7 proxy" section of ${docs}`);
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${errorMessage(err)}\n`);
  process.exitCode = 1;
});
