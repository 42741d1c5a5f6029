// How to configure, start and reload each server the reload benchmark compares. Every server gets
// two workers (HAProxy: two threads), listens on one loopback port and answers `GET /` with a
// short 200 from its own configuration, with no access log.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '../lib/executables.js';
import { LOOPBACK } from '../lib/loopback.js';
import { commandVersion } from '../lib/machine.js';

/** The nginx.conf that nginx and hitless both read; `generation` changes the body on each reload. */
function nginxConf(port, generation) {
  return `worker_processes 2;
pid logs/server.pid;
error_log logs/error.log notice;
events { worker_connections 1024; }
http {
    server {
        listen ${LOOPBACK}:${port};
        location / { return 200 "generation ${generation}\\n"; }
    }
}
`;
}

/**
 * @typedef {object} ReloadTarget
 * @property {string} name
 * @property {(repo: string) => string | undefined} executable
 * @property {(executable: string) => Promise<string>} version
 * @property {(o: { prefix: string, port: number, repo: string, executable: string }) => { files: Record<string, string>, command: string, args: string[] }} setup
 * @property {(o: { prefix: string, child: import('node:child_process').ChildProcess, generation: number }) => void} reload
 */

/** Sends a signal to the pid in a pid file. */
function signalPidFile(path, signal) {
  const pid = Number(readFileSync(path, 'utf8').trim());
  process.kill(pid, signal);
}

/** Rewrites the nginx.conf with a new body, keeping the port. */
function rewriteNginxConf(prefix, generation) {
  const path = join(prefix, 'conf/server.conf');
  const text = readFileSync(path, 'utf8').replace(/generation \d+/, `generation ${generation + 1}`);
  writeFileSync(path, text);
}

/** @type {ReloadTarget[]} */
export const SERVERS = [
  {
    name: 'nginx',
    executable: () => findExecutable('nginx'),
    version: async (executable) => (await commandVersion(executable, ['-v']))?.replace(/^nginx version: /, '') ?? '?',
    setup: ({ prefix, port, executable }) => ({
      files: { 'conf/server.conf': nginxConf(port, 0).replace('http {', 'http {\n    access_log off;') },
      command: executable,
      args: ['-p', `${prefix}/`, '-c', 'conf/server.conf', '-g', 'daemon off;'],
    }),
    reload: ({ prefix, generation }) => {
      rewriteNginxConf(prefix, generation);
      signalPidFile(join(prefix, 'logs/server.pid'), 'SIGHUP');
    },
  },
  {
    name: 'haproxy',
    executable: () => findExecutable('haproxy'),
    version: async (executable) => (await commandVersion(executable, ['-v']))?.replace(/^HAProxy version (\S+).*$/, '$1') ?? '?',
    setup: ({ prefix, port, executable }) => ({
      files: {
        'conf/haproxy.cfg': `global
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind ${LOOPBACK}:${port}
    http-request return status 200 content-type text/plain string "generation 0"
`,
      },
      command: executable,
      // -W: master-worker mode, where SIGUSR2 to the master is the reload (HAProxy management guide 4.3).
      args: ['-W', '-f', join(prefix, 'conf/haproxy.cfg'), '-p', join(prefix, 'logs/server.pid')],
    }),
    reload: ({ prefix, generation }) => {
      const path = join(prefix, 'conf/haproxy.cfg');
      writeFileSync(path, readFileSync(path, 'utf8').replace(/generation \d+/, `generation ${generation + 1}`));
      signalPidFile(join(prefix, 'logs/server.pid'), 'SIGUSR2');
    },
  },
  {
    name: 'hitless',
    executable: (repo) => (existsSync(join(repo, 'bin/hitless')) ? join(repo, 'bin/hitless') : undefined),
    version: async (executable) => (await commandVersion(process.execPath, [executable, '-v']))?.replace(/^hitless version: /, '') ?? '?',
    setup: ({ prefix, port, executable }) => ({
      files: { 'conf/server.conf': nginxConf(port, 0) },
      command: process.execPath,
      args: [executable, '-p', `${prefix}/`, '-c', 'conf/server.conf', '-g', 'daemon off;'],
    }),
    reload: ({ prefix, generation }) => {
      rewriteNginxConf(prefix, generation);
      signalPidFile(join(prefix, 'logs/server.pid'), 'SIGHUP');
    },
  },
];
