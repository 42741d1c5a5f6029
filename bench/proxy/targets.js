// The proxies under test. Each one says whether it can run on this machine (and why not), what
// version it is, and how to start it on a port in front of the upstream.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandVersion } from '../lib/machine.js';
import { findExecutable } from '../lib/executables.js';
import { haproxyConf, hitlessConf, nginxProxyConf } from './configs.js';

/**
 * @typedef {object} TargetContext
 * @property {import('../lib/process-group.js').ProcessGroup} group
 * @property {string} dir a folder of this target's own for its configuration and logs
 * @property {number} port where the target listens
 * @property {number} upstreamPort
 * @property {string} repoRoot
 * @property {string} benchDir
 */

/**
 * @typedef {object} Target
 * @property {string} name as printed in the table
 * @property {string} processes what its RSS figure sums
 * @property {(ctx: TargetContext) => Promise<string | undefined>} skipReason why it cannot run here, if it cannot
 * @property {(ctx: TargetContext) => Promise<string>} version
 * @property {(ctx: TargetContext) => Promise<import('node:child_process').ChildProcess>} start
 */

/** @type {Target} */
const hitless = {
  name: 'hitless',
  processes: 'master + worker',
  async skipReason(ctx) {
    writeFileSync(join(ctx.dir, 'hitless.conf'), hitlessConf(ctx.dir, ctx.port, ctx.upstreamPort));
    // `-t` reads the same directive tables as the server: if it refuses proxy_pass (or anything else
    // in the configuration), the server would too.
    const result = await execFileResult(process.execPath, [
      join(ctx.repoRoot, 'bin', 'hitless'), '-t', '-p', ctx.dir, '-c', 'hitless.conf',
    ], ctx.repoRoot);
    if (result.ok) return undefined;
    const message = result.output.split('\n').filter((line) => line.trim() !== '' && !/test failed/.test(line));
    return `\`hitless -t\` failed on the proxy configuration: ${message.slice(0, 2).join(' ') || 'no message'}`;
  },
  async version(ctx) {
    const { version } = JSON.parse(readFileSync(join(ctx.repoRoot, 'package.json'), 'utf8'));
    const commit = await execFileResult('git', ['rev-parse', '--short', 'HEAD'], ctx.repoRoot);
    return commit.ok ? `${version} (${commit.output.trim()})` : version;
  },
  start(ctx) {
    return ctx.group.start(process.execPath, [
      join(ctx.repoRoot, 'bin', 'hitless'), '-p', ctx.dir, '-c', 'hitless.conf',
    ], { logFile: join(ctx.dir, 'output.log'), cwd: ctx.repoRoot });
  },
};

/** @type {Target} */
const nginx = {
  name: 'nginx',
  processes: 'master + worker',
  async skipReason() {
    return findExecutable('nginx') ? undefined : 'nginx not found (apt-get install nginx-light)';
  },
  async version() {
    return versionAfterSlash(await commandVersion(/** @type {string} */ (findExecutable('nginx')), ['-v']));
  },
  start(ctx) {
    writeFileSync(join(ctx.dir, 'nginx.conf'), nginxProxyConf(ctx.dir, ctx.port, ctx.upstreamPort));
    return startNginx(ctx.group, ctx.dir);
  },
};

/** @type {Target} */
const haproxy = {
  name: 'HAProxy',
  processes: 'one process',
  async skipReason() {
    return findExecutable('haproxy') ? undefined : 'haproxy not found (apt-get install haproxy)';
  },
  async version() {
    const line = await commandVersion(/** @type {string} */ (findExecutable('haproxy')), ['-v']);
    return /version (\S+)/.exec(line ?? '')?.[1] ?? 'unknown';
  },
  start(ctx) {
    writeFileSync(join(ctx.dir, 'haproxy.cfg'), haproxyConf(ctx.port, ctx.upstreamPort));
    // -db: stay in the foreground, without the master-worker mode; a single process.
    return ctx.group.start(/** @type {string} */ (findExecutable('haproxy')), [
      '-db', '-f', join(ctx.dir, 'haproxy.cfg'),
    ], { logFile: join(ctx.dir, 'output.log') });
  },
};

/**
 * A Node.js proxy from bench/package.json, run from a script in peers/.
 * @param {string} name
 * @param {string} script
 * @param {string[]} packages whose versions the table shows, the proxy's own first
 * @returns {Target}
 */
function nodePeer(name, script, packages) {
  return {
    name,
    processes: 'one process',
    async skipReason() {
      return undefined;
    },
    async version(ctx) {
      /** @param {string} pkg */
      const versionOf = (pkg) =>
        JSON.parse(readFileSync(join(ctx.benchDir, 'node_modules', pkg, 'package.json'), 'utf8')).version;
      const [own, ...others] = packages;
      const extra = others.map((pkg) => `${pkg} ${versionOf(pkg)}`).join(', ');
      return `${versionOf(/** @type {string} */ (own))}${extra ? ` (${extra})` : ''}`;
    },
    start(ctx) {
      return ctx.group.start(process.execPath, [
        join(ctx.benchDir, 'proxy', 'peers', script), String(ctx.port), String(ctx.upstreamPort),
      ], { logFile: join(ctx.dir, 'output.log'), cwd: ctx.benchDir });
    },
  };
}

/** Every proxy, in the order they run and appear in the table. */
export const TARGETS = [
  hitless,
  nginx,
  haproxy,
  nodePeer('@fastify/http-proxy', 'fastify-http-proxy.js', ['@fastify/http-proxy', 'fastify']),
  nodePeer('http-proxy', 'node-http-proxy.js', ['http-proxy']),
];

/** Names of the Node.js peers, for the "hitless vs best Node peer" ratio. */
export const NODE_PEERS = ['@fastify/http-proxy', 'http-proxy'];

/**
 * Starts nginx in the foreground with the nginx.conf in `dir`. `-e` keeps nginx from opening
 * Debian's /var/log/nginx/error.log before it has read the configuration.
 * @param {import('../lib/process-group.js').ProcessGroup} group
 * @param {string} dir
 */
export function startNginx(group, dir) {
  return group.start(/** @type {string} */ (findExecutable('nginx')), [
    '-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'),
  ], { logFile: join(dir, 'output.log') });
}

/**
 * "nginx version: nginx/1.22.1" becomes "1.22.1".
 * @param {string | undefined} line
 */
function versionAfterSlash(line) {
  return /\/(\S+)/.exec(line ?? '')?.[1] ?? 'unknown';
}

/**
 * Runs a command to its end (at most 30 s) and reports whether it succeeded, with its stdout and
 * stderr together.
 * @param {string} command
 * @param {string[]} args
 * @param {string} cwd
 * @returns {Promise<{ ok: boolean, output: string }>}
 */
function execFileResult(command, args, cwd) {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ ok: !err, output: `${stderr}${stdout}`.trim() || (err ? err.message : '') });
    });
  });
}
