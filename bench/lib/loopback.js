// Loopback networking for benchmarks: free ports, readiness checks and a one-off GET.
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** The only address benchmarks listen on and send traffic to. */
export const LOOPBACK = '127.0.0.1';

/**
 * A port that is free on the loopback address now: the kernel's choice for port 0.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('Cannot find a free port'));
      });
    });
  });
}

/**
 * Resolves once a TCP connection to the port succeeds; rejects after `timeoutMs`, or as soon as
 * `exited()` says the server's process has died.
 * @param {number} port
 * @param {{ timeoutMs?: number, exited?: () => boolean }} [options] timeoutMs defaults to 10000
 */
export async function waitForPort(port, { timeoutMs = 10_000, exited = () => false } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(port)) return;
    if (exited()) throw new Error('The process exited before it listened');
    if (Date.now() > deadline) throw new Error(`Nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * One GET request to `http://127.0.0.1:<port><path>`, on a connection of its own.
 * @param {number} port
 * @param {string} [path] default "/"
 * @returns {Promise<{ status: number, body: string }>}
 */
export function httpGet(port, path = '/') {
  return new Promise((resolve, reject) => {
    const request = get({ host: LOOPBACK, port, path, agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.once('timeout', () => request.destroy(new Error(`GET ${path} timed out`)));
    request.once('error', reject);
  });
}
