// Runs h2load (Debian's nghttp2-client) and reads its report, as wrk.js does for wrk: the lines
// that h2load 1.x prints at the end of a run (src/h2load.cc), and a loud failure on any other shape.
import { spawn } from 'node:child_process';

/** h2load's time units, in milliseconds. */
const MS_PER_UNIT = { us: 0.001, ms: 1, s: 1000 };

/**
 * @typedef {object} H2loadResult
 * @property {number} requestsPerSecond
 * @property {number} requests requests done
 * @property {number} errors requests failed (errored and timed out among them), plus 4xx and 5xx responses
 * @property {number} meanMs the mean time for a request
 */

/**
 * Runs `h2load -t1 -c<clients> -m<streams> -D<seconds> <url>` in `group`.
 * @param {string} url
 * @param {{ clients: number, streams: number, seconds: number }} load
 * @param {import('./process-group.js').ProcessGroup} group
 * @returns {Promise<H2loadResult>}
 */
export function runH2load(url, { clients, streams, seconds }, group) {
  const args = ['-t1', `-c${clients}`, `-m${streams}`, `-D${seconds}`, url];
  const h2load = spawn('h2load', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], timeout: (seconds + 30) * 1000 });
  group.track(h2load);
  let stdout = '';
  let stderr = '';
  h2load.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  h2load.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    h2load.once('error', reject);
    h2load.once('close', (code, signal) => {
      if (code !== 0) reject(new Error(`h2load exited with ${signal ?? `status ${code}`}: ${stderr.trim() || stdout.trim()}`));
      else {
        try {
          resolve(parseH2loadOutput(stdout));
        } catch (err) {
          reject(err);
        }
      }
    });
  });
}

/**
 * @param {string} output
 * @returns {H2loadResult}
 */
export function parseH2loadOutput(output) {
  const finished = /^finished in [\d.]+\w+, ([\d.]+) req\/s/m.exec(output);
  const requests = /^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(output);
  const status = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(output);
  const time = /^time for request:\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)\s/m.exec(output);
  if (!finished || !requests || !status || !time) throw new Error(`Cannot read the h2load report (finished, requests, status codes, time for request):\n${output}`);
  // h2load's "failed" already counts the errored and timed-out requests (h2load(1)).
  const [, done, , failed] = requests.map(Number);
  const [, , , clientErrors, serverErrors] = status.map(Number);
  return {
    requestsPerSecond: Number(finished[1]),
    requests: Number(done),
    errors: Number(failed) + Number(clientErrors) + Number(serverErrors),
    meanMs: Number(time[1]) * MS_PER_UNIT[/** @type {keyof typeof MS_PER_UNIT} */ (time[2])],
  };
}
