#!/usr/bin/env node
// How should the master give workers their connections? Measures the two ways Node allows, with
// two workers serving a short 200 on loopback:
//
//   shared       the master binds one socket (never listens on it itself) and hands the handle
//                to every worker, which accept()s from the one kernel queue: nginx's model, and
//                Node cluster's SCHED_NONE; what hitless does
//   round-robin  the master accepts every connection and sends its handle to the next worker
//                over IPC: Node cluster's default SCHED_RR
//
// for each: requests/s with keep-alive, connections/s with a new connection per request, and how
// the work split between the two workers.
//
//   node bench/reload/handle-passing.js [--seconds 5] [--connections 50]
import cluster from 'node:cluster';
import { execFile, fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { LOOPBACK, freePort, waitForPort } from '../lib/loopback.js';
import { ProcessGroup } from '../lib/process-group.js';
import { parseWrkOutput } from '../lib/wrk.js';

const WORKERS = 2;

if (process.argv[2] === '--worker') {
  serveAsWorker();
} else if (cluster.isWorker) {
  serveAsClusterWorker();
} else if (process.argv[2] === '--round-robin') {
  runRoundRobinPrimary(Number(process.argv[3]));
} else {
  await compare();
}

/** A worker of the shared-socket model: listens on the handle the master sent. */
function serveAsWorker() {
  let served = 0;
  const server = http.createServer((_req, res) => {
    served++;
    res.end('ok\n');
  });
  process.on('message', (message, handle) => {
    if (message === 'listen') server.listen(handle, 511, () => process.send?.('ready'));
    if (message === 'count') process.send?.({ served });
  });
}

/** A worker of Node's cluster in round-robin mode. */
function serveAsClusterWorker() {
  let served = 0;
  http.createServer((_req, res) => {
    served++;
    res.end('ok\n');
  }).listen(Number(process.env.BENCH_PORT), LOOPBACK);
  process.on('message', (message) => {
    if (message === 'count') process.send?.({ served });
  });
}

/** The primary of Node's cluster with SCHED_RR: it accepts and distributes every connection. */
function runRoundRobinPrimary(port) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: process.argv[1], args: [] });
  const workers = Array.from({ length: WORKERS }, () => cluster.fork({ BENCH_PORT: String(port) }));
  process.on('message', async (message) => {
    if (message !== 'count') return;
    const counts = await Promise.all(workers.map((worker) => askCount(worker)));
    process.send?.({ counts });
  });
}

/** The master of the shared-socket model. */
function runSharedMaster(port) {
  const create = /** @type {any} */ (net)._createServerHandle;
  const handle = create(LOOPBACK, port, 4, undefined, 0);
  const workers = Array.from({ length: WORKERS }, () => {
    const worker = fork(process.argv[1], ['--worker']);
    worker.send('listen', handle);
    return worker;
  });
  return {
    counts: () => Promise.all(workers.map((worker) => askCount(worker))),
    stop: () => {
      for (const worker of workers) worker.kill('SIGKILL');
      handle.close();
    },
  };
}

/** @param {{ send: Function, once: Function, on: Function, off: Function }} worker */
function askCount(worker) {
  return new Promise((resolve) => {
    const listener = (message) => {
      if (message && typeof message === 'object' && 'served' in message) {
        worker.off('message', listener);
        resolve(message.served);
      }
    };
    worker.on('message', listener);
    worker.send('count');
  });
}

/** wrk with extra arguments (a `Connection: close` header), as a member of `group`. */
function wrk(url, connections, seconds, extra, group) {
  return new Promise((resolve, reject) => {
    const args = ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', ...extra, url];
    const child = execFile('wrk', args, { timeout: (seconds + 30) * 1000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(parseWrkOutput(stdout));
    });
    group.track(child);
  });
}

async function compare() {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, connections: { type: 'string', default: '50' } } });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const group = new ProcessGroup();
  const lines = ['| model | load | requests/s | errors | worker A | worker B |', '|---|---|---:|---:|---:|---:|'];
  try {
    for (const model of ['shared', 'round-robin']) {
      for (const load of ['keep-alive', 'new connection per request']) {
        const port = await freePort();
        let counts;
        let stop;
        if (model === 'shared') {
          const master = runSharedMaster(port);
          counts = master.counts;
          stop = async () => master.stop();
        } else {
          const primary = fork(process.argv[1], ['--round-robin', String(port)], { detached: true });
          group.track(primary);
          counts = () => new Promise((resolve) => {
            primary.once('message', (message) => resolve(message.counts));
            primary.send('count');
          });
          stop = () => group.stop(primary);
        }
        await waitForPort(port);
        const before = await counts();
        const url = `http://${LOOPBACK}:${port}/`;
        const result = await wrk(url, connections, seconds, load === 'keep-alive' ? [] : ['-H', 'Connection: close'], group);
        const after = await counts();
        const served = after.map((n, i) => n - (before[i] ?? 0));
        const total = served.reduce((a, b) => a + b, 0) || 1;
        const share = served.map((n) => `${((100 * n) / total).toFixed(0)}%`);
        lines.push(`| ${model} | ${load} | ${Math.round(result.requestsPerSecond)} | ${result.errors} | ${share[0]} | ${share[1]} |`);
        process.stderr.write(`bench: ${model}, ${load}: ${Math.round(result.requestsPerSecond)} requests/s, split ${share.join(' / ')}\n`);
        await stop();
      }
    }
  } finally {
    await group.stopAll();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
