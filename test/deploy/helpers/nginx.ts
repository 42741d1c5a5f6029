/**
 * A real nginx per test suite: its own prefix in a temporary directory, loopback ports, started
 * in the foreground as a child and ended in after(), whatever happened. Also the TLS fixtures and
 * a fresh-handshake client.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

/** The committed fixtures made by scripts/make-test-certs.sh. */
export const TLS_DIR = fileURLToPath(new URL('../../../../test/fixtures/tls/', import.meta.url));

/** The path of a fixture. */
export function fixture(name: string): string {
  return join(TLS_DIR, name);
}

/** The nginx binary the tests drive. */
export const NGINX = process.env['HITLESS_TEST_NGINX'] ?? '/usr/sbin/nginx';

if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install Debian's nginx-light (.ci/run does)`);

/** A loopback port free on 127.0.0.1 and, when `v6`, on ::1 too. */
export async function freePort(v6 = false): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await bindAndRelease('127.0.0.1', 0);
    if (!v6 || (await bindAndRelease('::1', port).then(() => true, () => false))) return port;
  }
  throw new Error('no free port on both 127.0.0.1 and ::1');
}

function bindAndRelease(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      server.close(() => (address !== null && typeof address !== 'string' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A running nginx. */
export interface NginxInstance {
  readonly dir: string;
  readonly conf: string;
  /** nginx's `-g`, also needed by `nginx -t` and `-s reload`. */
  readonly globals: string;
  /** The flags every deploy to this nginx passes. */
  readonly deployArgs: readonly string[];
  path(relative: string): string;
  write(relative: string, text: string | Buffer): string;
  read(relative: string): Buffer;
  /** The error and access logs, for the secret check. */
  logs(): string;
  stop(): Promise<void>;
}

/** Writes `files` under a new prefix and starts nginx on it; resolves once `port` accepts. */
export async function startNginx(files: Readonly<Record<string, string | Buffer>>, port: number): Promise<NginxInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-nginx-'));
  mkdirSync(join(dir, 'logs'));
  const write = (relative: string, text: string | Buffer): string => {
    const file = join(dir, relative);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  };
  for (const [relative, text] of Object.entries(files)) write(relative, text);
  const conf = join(dir, 'nginx.conf');
  const globals = `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'logs/error.log')} info;`;
  const child: ChildProcess = spawn(NGINX, ['-p', `${dir}/`, '-c', conf, '-g', globals], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, () => child.exitCode !== null, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir,
    conf,
    globals,
    deployArgs: ['--target', 'nginx', '--nginx', NGINX, '--conf', conf, '-p', `${dir}/`, '-g', globals],
    path: (relative) => join(dir, relative),
    write,
    read: (relative) => readFileSync(join(dir, relative)),
    logs: () => ['logs/error.log', 'logs/access.log'].map((f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '')).join('\n') + stderr,
    stop,
  };
}

async function waitForPort(port: number, dead: () => boolean, stderr: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (dead()) throw new Error(`nginx exited: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nginx did not listen on ${port}: ${stderr()}`);
}


/** What a fresh handshake saw. */
export interface Served {
  readonly sha256: string | undefined;
  readonly authorized: boolean;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** One full TLS handshake (or a resumption, given `session`) and an HTTP request. */
export function handshake(host: string, port: number, servername: string, options: { session?: Buffer; maxVersion?: tls.SecureVersion } = {}): Promise<Served> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = tls.connect({
      host,
      port,
      servername,
      ca: readFileSync(fixture('ca.crt')),
      rejectUnauthorized: false,
      ...(options.session === undefined ? {} : { session: options.session }),
      ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('session', (s: Buffer) => (session = s));
    let seen: Omit<Served, 'session'> | undefined;
    socket.once('secureConnect', () => {
      seen = { sha256: socket.getPeerX509Certificate()?.fingerprint256, authorized: socket.authorized, reused: socket.isSessionReused() };
      socket.end(`GET / HTTP/1.0\r\nHost: ${servername}\r\n\r\n`);
    });
    socket.on('data', () => undefined);
    socket.once('error', reject);
    // TLS 1.3 sends its session tickets after the handshake: wait for the close to have them.
    socket.once('close', () => (seen === undefined ? reject(new Error('no handshake')) : resolve({ ...seen, session })));
  });
}

/** The SHA-256 fingerprint of a fixture certificate (its first PEM block). */
export function fingerprint(name: string): string {
  return new X509Certificate(readFileSync(fixture(name))).fingerprint256;
}

/** Copies a fixture into the instance. */
export function installFixture(nginx: NginxInstance, name: string, relative: string): void {
  mkdirSync(dirname(nginx.path(relative)), { recursive: true });
  copyFileSync(fixture(name), nginx.path(relative));
}

/** The base64 lines of every fixture key, to look for in logs and output. */
export function keyFragments(): string[] {
  const names = ['a-rsa', 'a-rsa-2', 'a-ec', 'b-rsa', 'b-ec', 'a-weak', 'wildcard-ec'];
  return names.flatMap((name) =>
    readFileSync(fixture(`${name}.key`), 'utf8')
      .split('\n')
      .filter((line) => /^[A-Za-z0-9+/=]{20,}$/.test(line)),
  );
}

/** Runs nginx -t on a configuration, for tests that check staged copies. */
export function nginxTest(conf: string, globals: string, prefix: string): { status: number | null; output: string } {
  const result = spawnSync(NGINX, ['-t', '-p', prefix, '-c', conf, '-g', globals], { encoding: 'utf8' });
  return { status: result.status, output: result.stderr };
}
