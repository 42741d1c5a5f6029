// Runs wrk and reads its report. wrk prints a human report only; the parser below reads the lines
// that wrk 4.x prints with --latency (src/wrk.c, print_stats_latency) and fails loudly on any other
// shape rather than report a made-up figure.
import { spawn } from 'node:child_process';

/** wrk's time units (src/units.c), in milliseconds. */
const MS_PER_UNIT = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * @typedef {object} WrkResult
 * @property {number} requestsPerSecond
 * @property {number} p50Ms
 * @property {number} p99Ms
 * @property {number} requests total requests completed
 * @property {number} errors socket errors (connect, read, write, timeout) plus non-2xx/3xx responses
 */

/**
 * Runs `wrk -t<threads> -c<connections> -d<seconds>s --latency <url>`, as a member of `group` so
 * that an interrupted benchmark stops it too.
 * @param {string} url
 * @param {{ threads: number, connections: number, seconds: number, headers?: string[] }} load  headers: wrk -H lines (default none)
 * @param {import('./process-group.js').ProcessGroup} group
 * @returns {Promise<WrkResult>}
 */
export function runWrk(url, { threads, connections, seconds, headers = [] }, group) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  // execFile does not pass `detached` on to spawn, hence spawn. wrk stops by itself after -d; the
  // timeout only guards against a wedged run.
  const wrk = spawn('wrk', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], timeout: (seconds + 30) * 1000 });
  group.track(wrk);
  let stdout = '';
  let stderr = '';
  wrk.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  wrk.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    wrk.once('error', reject);
    wrk.once('close', (code, signal) => {
      if (code !== 0) reject(new Error(`wrk exited with ${signal ?? `status ${code}`}: ${stderr.trim() || stdout.trim()}`));
      else resolve(parseWrkOutput(stdout));
    });
  });
}

/**
 * Reads requests/s, the 50th and 99th latency percentiles and error counts from wrk's report.
 * @param {string} output
 * @returns {WrkResult}
 */
export function parseWrkOutput(output) {
  const rps = /^Requests\/sec:\s+([\d.]+)\s*$/m.exec(output);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(output);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(output);
  const total = /^\s+(\d+) requests in /m.exec(output);
  if (!rps || !p50 || !p99 || !total) {
    throw new Error(`Cannot read the wrk report (requests/sec, 50%, 99%):\n${output}`);
  }
  let errors = 0;
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (socketErrors) errors += socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: toMs(p50),
    p99Ms: toMs(p99),
    requests: Number(total[1]),
    errors,
  };
}

/**
 * @param {RegExpExecArray} match value in group 1, unit in group 2
 * @returns {number}
 */
function toMs(match) {
  return Number(match[1]) * MS_PER_UNIT[/** @type {keyof typeof MS_PER_UNIT} */ (match[2])];
}
