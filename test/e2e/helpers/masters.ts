/**
 * Starting and stopping master processes in tests. Every master is spawned in a process group of
 * its own, so that `stop()` can end it, its workers and a binary-upgrade child by group id; a
 * daemonized master (its own session) and every pid the error log names are ended by pid.
 * Nothing here waits without a bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminClient } from '../../../src/admin/admin-client.js';
import type { AdminStatus } from '../../../src/admin/admin-server.js';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));

/** Which program a test runs: the real `bin/hitless`, or a master whose workers serve a fake runtime. */
export type MasterProgram = 'hitless' | 'fake';

/** The command line that starts a master of this program. */
export function masterCommand(program: MasterProgram): string[] {
  if (program === 'fake') return [join(repo, 'build/test/process/fixtures/fake-master.js')];
  return [join(repo, 'bin/hitless')];
}

/** Runs a `hitless` command (certs, upstreams...) to its end, at most 20 s, and returns what it printed. */
export function runHitlessCommand(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...masterCommand('hitless'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A free loopback TCP port (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 50 ms until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One GET over a new connection: the status and body, or the error code. */
export function get(port: number, path = '/', timeoutMs = 5_000): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** The body a GET returns, or undefined when it fails. */
export async function bodyOf(port: number, path = '/'): Promise<string | undefined> {
  const result = await get(port, path, 2_000);
  return 'body' in result && result.status === 200 ? result.body : undefined;
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A file's text, or undefined when it does not exist at the moment it is read. */
function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A prefix directory with a conf/ and logs/ of its own, for one test. */
export class TestPrefix {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'hitless-test-'));
    mkdirSync(join(this.dir, 'conf'));
    mkdirSync(join(this.dir, 'logs'));
  }

  get confPath(): string {
    return join(this.dir, 'conf/hitless.conf');
  }

  get pidPath(): string {
    return join(this.dir, 'logs/hitless.pid');
  }

  get errorLogPath(): string {
    return join(this.dir, 'logs/error.log');
  }

  writeConf(text: string): void {
    writeFileSync(this.confPath, text);
  }

  errorLog(): string {
    return readIfPresent(this.errorLogPath) ?? '';
  }

  /** The pid in the pid file, or undefined. */
  pid(path = this.pidPath): number | undefined {
    // A binary upgrade renames the file away at any moment, so no exists-then-read.
    const pid = Number(readIfPresent(path)?.trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  }

  /**
   * The pid the file names, or a throw: never 0 or undefined, which `process.kill()` would turn
   * into a signal to the test runner's whole process group.
   */
  requirePid(path = this.pidPath): number {
    const pid = this.pid(path);
    if (pid === undefined) throw new Error(`no pid in ${path}`);
    return pid;
  }

  /** How many times the error log holds `text`. */
  count(text: string): number {
    return this.errorLog().split(text).length - 1;
  }

  /** Waits until the error log holds `text` at least `times` times. */
  waitForLog(text: string, times = 1, timeoutMs = 10_000): Promise<true> {
    return waitFor(`"${text}" x${times} in the error log`, () => (this.count(text) >= times ? true : undefined), timeoutMs);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A master started by a test. */
export class MasterUnderTest {
  readonly prefix: TestPrefix;
  /** The process spawned: the master itself with `daemon off`, the foreground parent with `daemon on`. */
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(prefix: TestPrefix, program: MasterProgram, extraArgs: readonly string[]) {
    this.prefix = prefix;
    this.child = spawn(process.execPath, [...masterCommand(program), '-p', `${prefix.dir}/`, '-c', 'conf/hitless.conf', ...extraArgs], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Sends a signal to the master named by the pid file. */
  signal(signal: NodeJS.Signals, pidPath = this.prefix.pidPath): void {
    process.kill(this.prefix.requirePid(pidPath), signal);
  }

  /** The pids of the workers the log says were started and that are still alive. */
  liveWorkers(): number[] {
    return [...this.prefix.errorLog().matchAll(/start worker process (\d+)/g)].map((m) => Number(m[1])).filter(isAlive);
  }

  /** Kills everything this master started, however far the test got. */
  async stop(): Promise<void> {
    const pids = new Set<number>();
    for (const match of this.prefix.errorLog().matchAll(/(?:start worker process|start new binary process) (\d+)|\] (\d+)#0:/g)) {
      pids.add(Number(match[1] ?? match[2]));
    }
    for (const path of [this.prefix.pidPath, `${this.prefix.pidPath}.oldbin`]) {
      const pid = this.prefix.pid(path);
      if (pid !== undefined) pids.add(pid);
    }
    if (this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    }
    for (const pid of pids) {
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await Promise.race([this.exited, sleep(2_000)]);
  }
}

/**
 * Waits until the master's admin API reports `count` ready workers of its current generation.
 * startMaster returns once one worker answers; a test that needs all of them waits here.
 */
export function readyWorkers(admin: AdminClient, count: number, timeoutMs = 15_000): Promise<AdminStatus> {
  return waitFor(`${count} ready workers`, async () => {
    const reply = await admin.status();
    return reply.workers.filter((worker) => worker.generation === reply.generation && worker.state === 'ready').length === count ? reply : undefined;
  }, timeoutMs);
}

/** Writes the configuration, starts a master and waits until `port` answers 200. */
export async function startMaster(options: {
  prefix: TestPrefix;
  conf: string;
  port: number;
  program: MasterProgram;
  daemon?: boolean;
  extraArgs?: readonly string[];
}): Promise<MasterUnderTest> {
  options.prefix.writeConf(options.conf);
  const args = [...(options.daemon ? [] : ['-g', 'daemon off;']), ...(options.extraArgs ?? [])];
  const master = new MasterUnderTest(options.prefix, options.program, args);
  await waitFor(`port ${options.port} to answer`, async () => {
    if (master.child.exitCode !== null && !options.daemon) throw new Error(`master exited ${master.child.exitCode}: ${master.stderr}${options.prefix.errorLog()}`);
    // The answer counts only once this master is up: with `daemon off` its pid file names the
    // child, so a stranger that took the port in the meantime is never mistaken for it.
    if (!options.daemon && options.prefix.pid() !== master.child.pid) return undefined;
    return (await bodyOf(options.port)) === undefined ? undefined : true;
  }, 15_000);
  return master;
}
