// What the edge benchmark checks before it measures, and the idle connections of its memory figure.
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import { connect } from 'node:http2';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOOPBACK, httpGet } from '../lib/loopback.js';
import { BODY } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * One GET over the protocol; rejects unless the answer is 200 and the benchmark's body.
 * @param {import('./servers.js').Protocol} protocol
 * @param {number} port
 */
export async function checkAnswer(protocol, port) {
  const { status, body } = protocol === 'http' ? await httpGet(port) : protocol === 'https' ? await httpsGet(port) : await h2Get(port);
  if (status !== 200 || body !== BODY) throw new Error(`GET / over ${protocol}: ${status} ${JSON.stringify(body.slice(0, 100))}, expected 200 ${JSON.stringify(BODY)}`);
}

/**
 * @param {number} port
 * @returns {Promise<{ status: number, body: string }>}
 */
function httpsGet(port) {
  return new Promise((resolve, reject) => {
    const req = request({ host: LOOPBACK, port, path: '/', agent: false, rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error('GET / over https timed out')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * @param {number} port
 * @returns {Promise<{ status: number, body: string }>}
 */
function h2Get(port) {
  return new Promise((resolve, reject) => {
    const session = connect(`https://${LOOPBACK}:${port}`, { rejectUnauthorized: false });
    const timer = setTimeout(() => session.destroy(new Error('GET / over h2 timed out')), 5000);
    const done = (/** @type {Error | undefined} */ err, /** @type {{ status: number, body: string }} */ value = { status: 0, body: '' }) => {
      clearTimeout(timer);
      session.close();
      if (err) reject(err);
      else resolve(value);
    };
    session.once('error', done);
    const stream = session.request({ ':path': '/' });
    let status = 0;
    let body = '';
    stream.once('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => (body += chunk));
    stream.once('end', () => done(undefined, { status, body }));
    stream.once('error', done);
  });
}

/**
 * Opens `count` TLS keep-alive connections to the port from a child process (idle-clients.js) and
 * resolves once each has had its response; the caller stops the child with `group.stop`.
 * @param {import('../lib/process-group.js').ProcessGroup} group
 * @param {number} port
 * @param {number} count
 * @param {(command: string, args: string[]) => [string, string[]]} withLimits
 * @returns {Promise<import('node:child_process').ChildProcess>}
 */
export function openIdleConnections(group, port, count, withLimits) {
  const [command, args] = withLimits(process.execPath, [join(here, 'idle-clients.js'), String(port), String(count)]);
  const child = spawn(command, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  group.track(child);
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    // A count of connections that the server cannot take in 120 s is a failure, not a figure.
    const timer = setTimeout(() => reject(new Error(`${count} idle connections not established after 120 s`)), 120_000);
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      if (/^established \d+$/m.test(stdout)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`idle-clients.js exited with ${signal ?? `status ${code}`}: ${stderr.trim()}`));
    });
    child.once('error', reject);
  });
}
