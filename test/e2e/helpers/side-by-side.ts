/**
 * hitless and the real nginx side by side on copies of one real configuration: copy a tree,
 * patch it (every patch must apply, so that a changed upstream file fails loudly instead of
 * testing something else), start a server in a process group of its own, send the same request
 * to both, and compare the parts of the responses a test names.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { HITLESS_BIN } from '../../helpers/bin.js';

/** The nginx binary compared with: Debian's, unless HITLESS_TEST_NGINX names another. */
export const NGINX_BIN = process.env['HITLESS_TEST_NGINX'] ?? '/usr/sbin/nginx';

/** Copies a directory tree, following symlinks (Debian's sites-enabled/ and modules-enabled/ are links). */
export function copyTree(from: string, to: string): void {
  cpSync(from, to, { recursive: true, dereference: true, preserveTimestamps: true });
}

/** Rewrites a file; each pattern must match at least once, or this throws naming it. */
export function patchFile(path: string, patches: readonly (readonly [pattern: RegExp, replacement: string])[]): void {
  let text = readFileSync(path, 'utf8');
  for (const [pattern, replacement] of patches) {
    if (!pattern.test(text)) throw new Error(`patch ${String(pattern)} does not apply to ${path}`);
    pattern.lastIndex = 0;
    text = text.replace(pattern, replacement);
  }
  writeFileSync(path, text);
}

/** `-t` of one binary on a configuration: exit status and what it printed. */
export function configTest(binary: 'hitless' | 'nginx', args: readonly string[]): { status: number | null; output: string } {
  const command = binary === 'hitless' ? [process.execPath, HITLESS_BIN] : [NGINX_BIN];
  const [program, ...rest] = command as [string, ...string[]];
  const result = spawnSync(program, [...rest, '-t', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** A server started by a test. */
export interface RunningServer {
  readonly name: string;
  /** What it printed on stderr so far. */
  output(): string;
  /** Ends the server and everything it started (its process group), at most 10 s. */
  stop(): Promise<void>;
}

/**
 * Starts `bin/hitless` or nginx with `args` (its own process group, `daemon off` by the caller's
 * `-g`) and resolves once every one of `ports` on 127.0.0.1 accepts a connection (at most 20 s).
 */
export async function startServer(binary: 'hitless' | 'nginx', args: readonly string[], ports: readonly number[]): Promise<RunningServer> {
  const command = binary === 'hitless' ? [process.execPath, HITLESS_BIN] : [NGINX_BIN];
  const [program, ...rest] = command as [string, ...string[]];
  const child: ChildProcess = spawn(program, [...rest, ...args], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group is gone.
    }
  };
  const server: RunningServer = {
    name: binary,
    output: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup('SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      // Workers the master left behind.
      signalGroup('SIGKILL');
    },
  };
  const deadline = Date.now() + 20_000;
  for (const port of ports) {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await server.stop();
        throw new Error(`${binary} exited (${child.exitCode ?? child.signalCode}) before listening on ${port}: ${stderr}`);
      }
      if (await accepts(port)) break;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`${binary} did not listen on 127.0.0.1:${port} within 20 s: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return server;
}

/** True once 127.0.0.1:`port` accepts a connection. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts bin/hitless on `conf` with `dir` as its prefix (its pid file and an error log at info
 * there, `daemon off`), once `port` accepts; the function returned stops it.
 */
export async function startHitlessIn(dir: string, conf: string, port: number): Promise<() => Promise<void>> {
  const globals = `daemon off; pid ${join(dir, 'hitless.pid')}; error_log ${join(dir, 'error.log')} info;`;
  const server = await startServer('hitless', ['-p', `${dir}/`, '-c', conf, '-g', globals], [port]);
  return () => server.stop();
}

/** One response, whole. */
export interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** What a test sends: one request on a new connection (no keep-alive, no Accept-Encoding). */
export interface RequestSpec {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** HTTPS with this SNI name (certificates are not verified: both servers get the same ones). */
  readonly tls?: { readonly servername: string };
}

/** Sends `spec` to 127.0.0.1:`port` and reads the whole response (at most 10 s). */
export function send(port: number, spec: RequestSpec): Promise<Response> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method: spec.method ?? 'GET', path: spec.path, headers: { ...spec.headers }, agent: false, timeout: 10_000 };
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    };
    const req = spec.tls === undefined ? http.request(options, onResponse) : https.request({ ...options, servername: spec.tls.servername, rejectUnauthorized: false }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no response to ${spec.method ?? 'GET'} ${spec.path} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The status and the named headers of a response (lower-case names; absent ones as undefined), and the body when asked. */
export function pick(response: Response, headers: readonly string[], body: boolean): Record<string, unknown> {
  const picked: Record<string, unknown> = { status: response.status };
  for (const name of headers) picked[name] = response.headers[name];
  if (body) picked['body'] = response.body.toString('latin1');
  return picked;
}

/**
 * Opens a connection with `open`, writes `send` (if any), and resolves with everything the server
 * sent before it closed (latin1; at most 5 s).
 */
export function readToClose(open: () => Socket, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = open();
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 5 s (got "${got}")`));
    }, 5000);
    socket.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    if (send !== undefined) socket.write(send);
  });
}
