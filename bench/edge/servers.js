// The servers of the edge benchmark and how to start them: hitless and Debian's nginx from the same
// nginx.conf (one worker, `return 200`, TLS 1.3 on an ECDSA P-256 certificate, session tickets and
// cache off), and the plain Node peers of peers/. Each server listens on its own loopback ports,
// one per protocol it serves:
//   https  HTTP/1.1 over TLS (wrk)
//   h2     HTTP/2 over TLS, chosen by ALPN (h2load)
//   http   cleartext HTTP/1.1, for the reloads (wrk), as bench/reload/ measures them
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../lib/executables.js';
import { LOOPBACK } from '../lib/loopback.js';
import { commandVersion } from '../lib/machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');

/** What every server answers, 12 bytes as in the proxy benchmark. */
export const BODY = 'hello world\n';

/** @typedef {'https' | 'h2' | 'http'} Protocol */

/**
 * @typedef {object} Setup
 * @property {string} dir the server's own folder
 * @property {Partial<Record<Protocol, number>>} ports
 * @property {{ cert: string, key: string }} tls
 * @property {number} workerConnections enough for the idle connections of the memory figure
 * @property {string[]} nodeFlags Node options for the Node servers (--cpu-prof ...), [] for none
 * @property {(command: string, args: string[]) => [string, string[]]} withLimits wraps a command so that it runs with enough open files
 */

/**
 * @typedef {object} EdgeServer
 * @property {string} name
 * @property {Protocol[]} protocols
 * @property {boolean} reloads whether it has a reload (SIGHUP to the master)
 * @property {(setup: Setup) => string | undefined} prepare writes the configuration; a reason to skip the server, if any
 * @property {(setup: Setup) => [string, string[]]} command
 * @property {() => Promise<string>} version
 */

/**
 * The configuration hitless and nginx both read.
 * @param {Setup} setup
 * @param {string} pidFile
 */
function nginxConf({ dir, ports, tls, workerConnections }, pidFile) {
  const location = `location / { return 200 "${BODY.replace('\n', '\\n')}"; }`;
  return `worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, pidFile)};
events {
    worker_connections ${workerConnections};
}
http {
    access_log off;
    # Idle connections of the memory figure stay open; a keep-alive connection is never cut after
    # nginx's default 1000 requests (each cut is one more handshake in the keep-alive figure).
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen ${LOOPBACK}:${ports.https} ssl;
        ${location}
    }
    server {
        listen ${LOOPBACK}:${ports.h2} ssl http2;
        ${location}
    }
    server {
        listen ${LOOPBACK}:${ports.http};
        ${location}
    }
}
`;
}

/** @type {EdgeServer[]} */
export const SERVERS = [
  {
    name: 'hitless',
    protocols: ['https', 'h2', 'http'],
    reloads: true,
    prepare(setup) {
      writeFileSync(join(setup.dir, 'hitless.conf'), nginxConf(setup, 'hitless.pid'));
      const [command, args] = setup.withLimits(process.execPath, [join(repoRoot, 'bin', 'hitless'), '-t', '-p', `${setup.dir}/`, '-c', 'hitless.conf']);
      const test = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
      if (test.status !== 0) return `hitless -t refuses the configuration: ${(test.stderr || test.stdout).trim().split('\n').find((line) => /\[emerg\]/.test(line)) ?? `exit ${test.status}`}`;
      const warnings = `${test.stderr}${test.stdout}`.split('\n').filter((line) => /\[warn\]/.test(line));
      if (warnings.length > 0) process.stderr.write(`hitless -t: ${warnings.join('\n')}\n`);
      return undefined;
    },
    // Workers inherit the master's execArgv, so --cpu-prof profiles the worker too.
    command: (setup) => setup.withLimits(process.execPath, [...setup.nodeFlags, join(repoRoot, 'bin', 'hitless'), '-p', `${setup.dir}/`, '-c', 'hitless.conf']),
    version: async () => {
      const line = await commandVersion(process.execPath, [join(repoRoot, 'bin', 'hitless'), '-v']);
      return `${line?.replace(/^hitless version: hitless\//, '') ?? 'unknown'} (Node ${process.version})`;
    },
  },
  {
    name: 'nginx',
    protocols: ['https', 'h2', 'http'],
    reloads: true,
    prepare(setup) {
      if (!findExecutable('nginx')) return 'nginx not found (apt-get install nginx-light)';
      writeFileSync(join(setup.dir, 'nginx.conf'), nginxConf(setup, 'nginx.pid'));
      return undefined;
    },
    command: (setup) => setup.withLimits(/** @type {string} */ (findExecutable('nginx')), ['-p', `${setup.dir}/`, '-e', join(setup.dir, 'error.log'), '-c', join(setup.dir, 'nginx.conf')]),
    version: async () => {
      const line = (await commandVersion(/** @type {string} */ (findExecutable('nginx')), ['-v'])) ?? 'unknown';
      return /\/(\S+)/.exec(line)?.[1] ?? line;
    },
  },
  nodePeer('node:https', 'https', 'https-hello.js'),
  nodePeer('node:http2', 'h2', 'http2-hello.js'),
];

/**
 * A plain Node server of peers/, one process.
 * @param {string} name
 * @param {Protocol} protocol
 * @param {string} file
 * @returns {EdgeServer}
 */
function nodePeer(name, protocol, file) {
  return {
    name,
    protocols: [protocol],
    reloads: false,
    prepare: () => undefined,
    command: (setup) => setup.withLimits(process.execPath, [...setup.nodeFlags, join(here, 'peers', file), String(setup.ports[protocol]), setup.tls.cert, setup.tls.key]),
    version: async () => `Node ${process.version}`,
  };
}

/**
 * The soft limit on open files of this process, from /proc/self/limits.
 * @returns {{ soft: number, hard: number }}
 */
function openFileLimit() {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const value = (/** @type {string | undefined} */ text) => (text === undefined || text === 'unlimited' ? Infinity : Number(text));
  return { soft: value(match?.[1]), hard: value(match?.[2]) };
}

/**
 * A wrapper that runs commands with at least `needed` open files (`ulimit -n` in a shell that then
 * execs the command, so the pid stays the command's), or none when the limit is already enough.
 * @param {number} needed
 * @returns {(command: string, args: string[]) => [string, string[]]}
 */
export function openFilesWrapper(needed) {
  const { soft, hard } = openFileLimit();
  if (soft >= needed) return (command, args) => [command, args];
  if (hard < needed) throw new Error(`The benchmark needs ${needed} open files and the hard limit is ${hard}: raise it (ulimit -Hn) or pass a smaller --idle-connections`);
  return (command, args) => ['/bin/sh', ['-c', `ulimit -n ${needed} && exec "$@"`, 'sh', command, ...args]];
}
