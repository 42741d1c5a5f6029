#!/usr/bin/env node
// The edge benchmark of issue 20: TLS, HTTP/2, memory and reloads, side by side in one run, one
// worker each: hitless, Debian's nginx, and the plain Node servers of peers/ (node:https,
// node:http2), on a TLS 1.3 ECDSA P-256 certificate made here, session tickets and cache off.
// Every server is started first and stays up; then each figure is measured server after server,
// round after round, so that the other load of a shared machine falls on all of them alike.
// Usage: node bench/edge/run.js [--figures memory,keepalive,handshake,h2,reload] [--only ...] ...
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, cpuTicks } from '../lib/cpu.js';
import { findExecutable } from '../lib/executables.js';
import { ForeignCpuSampler } from '../lib/foreign-cpu.js';
import { runH2load } from '../lib/h2load.js';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { describeMachine } from '../lib/machine.js';
import { writeMarkdownSection } from '../lib/markdown-section.js';
import { commonUsage, parseCommonOptions, positiveInteger, wholeSeconds } from '../lib/options.js';
import { formatSummary, summarizeProfile } from '../lib/profile-summary.js';
import { ProcessGroup, tailOf } from '../lib/process-group.js';
import { treeRss } from '../lib/rss.js';
import { median } from '../lib/stats.js';
import { runWrk } from '../lib/wrk.js';
import { loadWhileReloading } from '../reload/under-load.js';
import { checkAnswer, openIdleConnections } from './probes.js';
import { PROFILE_SECTION, SECTION, formatReport } from './report.js';
import { SERVERS, openFilesWrapper } from './servers.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIGURES = ['memory', 'keepalive', 'handshake', 'h2', 'reload'];
/** The loads of the issue: wrk -c16 for handshakes, h2load -c10 -m10 for HTTP/2. */
export const LOADS = { handshakeConnections: 16, h2Clients: 10, h2Streams: 10 };

const USAGE = `Usage: node bench/edge/run.js [options]

  --figures <names>         comma-separated, of ${FIGURES.join(',')} (default all)
  --idle-connections <n>    idle TLS keep-alive connections of the memory figure (default 5000)
  --reloads <n>             reloads during the reload figure's run (default 20)
  --reload-duration <time>  length of the reload figure's runs (default 12s)
  --cpu-prof <dir>          run the Node servers with --cpu-prof into <dir> and summarise the
                            busiest profile of each (the figures are then not written to the docs)
${commonUsage(SERVERS.map((s) => s.name).join(','))}`;

function parseOptions() {
  const options = parseCommonOptions({
    figures: { type: 'string' },
    'idle-connections': { type: 'string', default: '5000' },
    reloads: { type: 'string', default: '20' },
    'reload-duration': { type: 'string', default: '12s' },
    'cpu-prof': { type: 'string' },
  });
  const figures = typeof options.values.figures === 'string' ? options.values.figures.split(',').map((f) => f.trim()) : FIGURES;
  for (const figure of figures) if (!FIGURES.includes(figure)) throw new Error(`Unknown figure "${figure}" in --figures`);
  for (const name of options.only ?? []) if (!SERVERS.some((s) => s.name === name)) throw new Error(`Unknown server "${name}" in --only`);
  return {
    ...options,
    figures,
    idleConnections: positiveInteger(String(options.values['idle-connections']), '--idle-connections'),
    reloads: positiveInteger(String(options.values.reloads), '--reloads'),
    reloadSeconds: wholeSeconds(String(options.values['reload-duration']), '--reload-duration'),
    cpuProf: typeof options.values['cpu-prof'] === 'string' ? resolve(options.values['cpu-prof']) : undefined,
  };
}

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);
/** @param {unknown} err */
const messageOf = (err) => (err instanceof Error ? err.message : String(err));

/**
 * @typedef {object} Running
 * @property {import('./servers.js').EdgeServer} server
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {Partial<Record<import('./servers.js').Protocol, number>>} ports
 * @property {string} dir
 * @property {string} version
 */

/**
 * A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1.
 * @param {string} dir
 */
function makeCertificate(dir) {
  const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  const out = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', tls.key, '-out', tls.cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`openssl could not make the certificate: ${out.stderr}`);
  return tls;
}

/** VmRSS of a server's processes, master and workers, in KiB. */
const rssKiB = (/** @type {number} */ pid) => treeRss(pid).reduce((sum, p) => sum + p.rssKiB, 0);

/**
 * The RSS once it has settled: a Node server's heap grows while it takes connections and gives
 * some back at its next garbage collections, so RSS is read every second until two reads in a row
 * differ by less than 1%, for 15 s at most.
 * @param {number} pid
 */
async function settledRssKiB(pid) {
  let previous = rssKiB(pid);
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const current = rssKiB(pid);
    if (Math.abs(current - previous) < previous * 0.01) return current;
    previous = current;
  }
  return previous;
}

async function main() {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  for (const tool of ['wrk', 'h2load', 'openssl']) if (!findExecutable(tool)) throw new Error(`${tool} not found (apt-get install wrk nghttp2-client openssl)`);
  const hz = clockTicks();
  const machine = describeMachine();
  log(`${machine.cpus} x ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}`);
  const group = new ProcessGroup();
  const sampler = new ForeignCpuSampler((pid, pgrp) => pid === process.pid || group.ownsProcessGroup(pgrp));
  const dir = mkdtempSync(join(tmpdir(), 'hitless-bench-edge-'));
  chmodSync(dir, 0o755);
  const tls = makeCertificate(dir);
  // The idle connections, twice over (client and server side), plus what the loads open.
  const withLimits = openFilesWrapper(options.idleConnections + 1024);
  /** @type {Running[]} */
  const running = [];
  const results = {
    /** @type {Map<string, string>} why a server has no figures */
    missing: new Map(),
    /** @type {Map<string, number>} */
    idleKiB: new Map(),
    /** @type {Map<string, { beforeKiB: number, afterKiB: number }>} */
    growth: new Map(),
    /** @type {Record<string, Map<string, { rps: number, p99Ms: number | undefined, cpuUs: number, errors: number }>>} */
    load: { keepalive: new Map(), handshake: new Map(), h2: new Map() },
    /** @type {Map<string, { withoutRps: number, withRps: number, withoutErrors: number, withErrors: number, reloads: number }>} */
    reload: new Map(),
    otherLoad: { percent: 0, top: /** @type {string[]} */ ([]) },
    /** @type {Map<string, { fromUs: number, toUs: number, requests: number }>} when each server's measured runs were, for its profile */
    measuredWindow: new Map(),
  };
  /** @param {string} name @param {number} fromUs @param {number} requests */
  const noteWindow = (name, fromUs, requests) => {
    const window = results.measuredWindow.get(name) ?? { fromUs, toUs: 0, requests: 0 };
    window.toUs = Number(process.hrtime.bigint() / 1000n);
    window.requests += requests;
    results.measuredWindow.set(name, window);
  };
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  /** @param {import('../lib/foreign-cpu.js').ForeignCpu} others */
  const noteOthers = (others) => {
    if (others.percent > results.otherLoad.percent) results.otherLoad = others;
    return `other processes ${Math.round(others.percent)}% of a CPU`;
  };
  try {
    for (const server of SERVERS.filter((s) => options.only === undefined || options.only.includes(s.name))) {
      const serverDir = join(dir, server.name.replace(/\W/g, '-'));
      mkdirSync(serverDir);
      chmodSync(serverDir, 0o755);
      /** @type {Partial<Record<import('./servers.js').Protocol, number>>} */
      const ports = {};
      for (const protocol of server.protocols) ports[protocol] = await freePort();
      const nodeFlags = options.cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(options.cpuProf, server.name.replace(/\W/g, '-'))}`];
      const setup = { dir: serverDir, ports, tls, workerConnections: options.idleConnections + 1024, nodeFlags, withLimits };
      const skip = server.prepare(setup);
      if (skip !== undefined) {
        log(`${server.name}: skipped, ${skip}`);
        results.missing.set(server.name, `skipped: ${skip}`);
        continue;
      }
      const [command, args] = server.command(setup);
      const child = await group.start(command, args, { logFile: join(serverDir, 'output.log'), cwd: serverDir });
      try {
        for (const protocol of server.protocols) {
          await waitForPort(/** @type {number} */ (ports[protocol]), { exited: () => child.exitCode !== null });
          await checkAnswer(protocol, /** @type {number} */ (ports[protocol]));
        }
        running.push({ server, child, pid: /** @type {number} */ (child.pid), ports, dir: serverDir, version: await server.version() });
      } catch (err) {
        log(`${server.name}: failed to start, ${messageOf(err)}\n${tailOf(join(serverDir, 'output.log'))}${tailOf(join(serverDir, 'error.log'))}`);
        results.missing.set(server.name, `failed: ${messageOf(err)}`);
        await group.stop(child);
      }
    }

    if (options.figures.includes('memory')) {
      for (const target of running) results.idleKiB.set(target.server.name, rssKiB(target.pid));
      for (const target of running.filter((t) => t.server.protocols.includes('https'))) {
        const beforeKiB = rssKiB(target.pid);
        try {
          const clients = await openIdleConnections(group, /** @type {number} */ (target.ports.https), options.idleConnections, withLimits);
          const atOnceKiB = rssKiB(target.pid);
          const afterKiB = await settledRssKiB(target.pid);
          await group.stop(clients);
          results.growth.set(target.server.name, { beforeKiB, afterKiB });
          log(`${target.server.name}: RSS ${(beforeKiB / 1024).toFixed(0)} MiB idle, ${(atOnceKiB / 1024).toFixed(0)} MiB once ${options.idleConnections} idle TLS connections are established, ${(afterKiB / 1024).toFixed(0)} MiB settled`);
        } catch (err) {
          log(`${target.server.name}: memory figure failed, ${messageOf(err)}`);
        }
      }
    }

    for (const figure of /** @type {const} */ (['keepalive', 'handshake', 'h2'])) {
      if (!options.figures.includes(figure)) continue;
      const protocol = figure === 'h2' ? 'h2' : 'https';
      const targets = running.filter((t) => t.server.protocols.includes(protocol));
      /** @param {Running} target @param {number} seconds */
      const runOnce = (target, seconds) => {
        const url = `https://${LOOPBACK}:${target.ports[protocol]}/`;
        if (figure === 'h2') return runH2load(url, { clients: LOADS.h2Clients, streams: LOADS.h2Streams, seconds }, group).then((r) => ({ ...r, p99Ms: undefined }));
        if (figure === 'handshake') return runWrk(url, { threads: 1, connections: LOADS.handshakeConnections, seconds, headers: ['Connection: close'] }, group);
        return runWrk(url, { threads: 1, connections: options.connections, seconds }, group);
      };
      /** @type {Map<string, { runs: { rps: number, p99Ms: number | undefined, errors: number }[], ticks: number, requests: number }>} */
      const runs = new Map(targets.map((t) => [t.server.name, { runs: [], ticks: 0, requests: 0 }]));
      /** @type {Set<string>} */
      const failed = new Set();
      if (options.warmup > 0) for (const target of targets) await runOnce(target, options.warmup).catch((err) => log(`${target.server.name}: ${figure} warm-up failed, ${messageOf(err)}`));
      for (let round = 1; round <= options.repeat; round++) {
        for (const target of targets.filter((t) => !failed.has(t.server.name))) {
          const entry = /** @type {NonNullable<ReturnType<typeof runs.get>>} */ (runs.get(target.server.name));
          const before = cpuTicks(target.pid);
          const startUs = nowUs();
          sampler.start();
          try {
            const result = await runOnce(target, options.seconds);
            noteWindow(target.server.name, startUs, result.requests);
            entry.ticks += cpuTicks(target.pid) - before;
            entry.requests += result.requests;
            entry.runs.push({ rps: result.requestsPerSecond, p99Ms: result.p99Ms, errors: result.errors });
            log(`${target.server.name}: ${figure} ${round}/${options.repeat}: ${result.requestsPerSecond.toFixed(0)} requests/s${result.p99Ms === undefined ? '' : `, p99 ${result.p99Ms} ms`}, ${result.errors} errors, ${(((cpuTicks(target.pid) - before) / hz) * 1e6 / result.requests).toFixed(0)} µs CPU/request; ${noteOthers(sampler.stop())}`);
          } catch (err) {
            sampler.stop();
            failed.add(target.server.name);
            log(`${target.server.name}: ${figure} failed, ${messageOf(err)}`);
          }
        }
      }
      for (const [name, entry] of runs) {
        if (entry.runs.length === 0) continue;
        const p99s = entry.runs.map((r) => r.p99Ms).filter((v) => v !== undefined);
        results.load[figure]?.set(name, {
          rps: median(entry.runs.map((r) => r.rps)),
          p99Ms: p99s.length > 0 ? median(p99s) : undefined,
          cpuUs: ((entry.ticks / hz) * 1e6) / entry.requests,
          errors: entry.runs.reduce((sum, r) => sum + r.errors, 0),
        });
      }
    }

    if (options.figures.includes('reload')) {
      const targets = running.filter((t) => t.server.reloads && t.server.protocols.includes('http'));
      /** @type {Map<string, { rps: number, errors: number, reloads: number }[]>} */
      const measured = new Map(targets.map((t) => [t.server.name, []]));
      for (const count of [0, options.reloads]) {
        for (const target of targets) {
          const url = `http://${LOOPBACK}:${target.ports.http}/`;
          const startUs = nowUs();
          sampler.start();
          try {
            // SIGHUP to the master: nginx's reload, and hitless's.
            const { result, reloads } = await loadWhileReloading(() => runWrk(url, { threads: 1, connections: options.connections, seconds: options.reloadSeconds }, group), {
              seconds: options.reloadSeconds,
              count,
              reload: () => process.kill(target.pid, 'SIGHUP'),
            });
            noteWindow(target.server.name, startUs, result.requests);
            measured.get(target.server.name)?.push({ rps: result.requestsPerSecond, errors: result.errors, reloads });
            log(`${target.server.name}: ${reloads} reloads in ${options.reloadSeconds} s: ${result.requestsPerSecond.toFixed(0)} requests/s, ${result.errors} failed; ${noteOthers(sampler.stop())}`);
          } catch (err) {
            sampler.stop();
            log(`${target.server.name}: reload figure failed, ${messageOf(err)}\n${tailOf(join(target.dir, 'error.log'))}`);
          }
        }
      }
      for (const [name, [without, during]] of measured) {
        if (without === undefined || during === undefined) continue;
        results.reload.set(name, { withoutRps: without.rps, withRps: during.rps, withoutErrors: without.errors, withErrors: during.errors, reloads: during.reloads });
      }
    }
  } finally {
    await group.stopAll();
    if (options.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }

  const versions = new Map(running.map((t) => [t.server.name, t.version]));
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const command = `cd bench && npm run bench:edge${options.args.length > 0 ? ` -- ${options.args.join(' ')}` : ''}`;
  const report = formatReport({ results, versions, options, machine, date, command, loads: LOADS });
  console.log(`\n${report}`);
  if (options.cpuProf !== undefined) {
    const profiles = summarizeProfiles(options.cpuProf, running, results.measuredWindow);
    console.log(`\n${profiles}`);
    if (options.writeDocs) {
      writeMarkdownSection(join(repoRoot, 'docs', 'benchmarks.md'), PROFILE_SECTION, `${profileIntro(options, date, command, machine)}\n\n${profiles}`, '# Benchmarks');
      log(`wrote the "${PROFILE_SECTION}" section of docs/benchmarks.md`);
    }
    return;
  }
  if (!options.writeDocs || options.only !== undefined || options.figures.length !== FIGURES.length) return;
  writeMarkdownSection(join(repoRoot, 'docs', 'benchmarks.md'), SECTION, report, '# Benchmarks');
  log(`wrote the "${SECTION}" section of docs/benchmarks.md`);
}

/**
 * For each Node server profiled, the summary of its busiest profile (a hitless worker's, not its
 * master's).
 * @param {string} profileDir
 * @param {Running[]} running
 * @param {Map<string, { fromUs: number, toUs: number, requests: number }>} windows the samples of the measured runs only, not of start-up and warm-up
 */
function summarizeProfiles(profileDir, running, windows) {
  const parts = [];
  for (const target of running) {
    const folder = join(profileDir, target.server.name.replace(/\W/g, '-'));
    let files = [];
    try {
      files = readdirSync(folder).filter((f) => f.endsWith('.cpuprofile'));
    } catch {
      continue;
    }
    const summaries = files.map((f) => summarizeProfile(JSON.parse(readFileSync(join(folder, f), 'utf8')), windows.get(target.server.name)));
    const busiest = summaries.sort((a, b) => b.busyMs - a.busyMs)[0];
    if (busiest === undefined) continue;
    parts.push(`### ${target.server.name}\n\n${formatSummary(busiest, 12, windows.get(target.server.name)?.requests)}`);
  }
  return parts.length > 0 ? parts.join('\n\n') : `No .cpuprofile found under ${profileDir}`;
}

/**
 * @param {ReturnType<typeof parseOptions>} options
 * @param {string} date
 * @param {string} command
 * @param {import('../lib/machine.js').Machine} machine
 */
function profileIntro(options, date, command, machine) {
  return `Where the CPU of the Node servers goes under the figures \`${options.figures.join(',')}\` (for \`h2\`: \`h2load -c${LOADS.h2Clients} -m${LOADS.h2Streams}\`), from \`node --cpu-prof\` (a hitless worker inherits the flag from its master; its profile is the busiest one), the samples of the measured runs only (not start-up or warm-up): self time per function, summed by module and by owner, and the caller most of a function's time came through. The profiler itself costs time, so these runs' figures are not the ones above. Generated by \`bench/edge/run.js --cpu-prof\` and \`bench/lib/profile-summary.js\`; do not edit by hand.

- Date: ${date}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Command: \`${command}\``;
}

main().catch((err) => {
  console.error(messageOf(err));
  process.exitCode = 1;
});
