/**
 * Knowing when an nginx reload has taken effect. `nginx -s reload` only sends SIGHUP; the master
 * then reads the configuration, starts new workers and, about 100 ms later, tells the old ones to
 * stop accepting (ngx_master_process_cycle() in src/os/unix/ngx_process_cycle.c). Until then a new
 * connection may still reach an old worker, and a health check would pass against the old
 * configuration. A worker that stops accepting retitles itself "worker process is shutting down"
 * in the same breath as it closes its listening sockets, so the reload has settled when every
 * worker that existed before it has exited or carries that title. If the master could not load the
 * new configuration it keeps its old workers as they were: the reload never settles, which is how
 * a failed reload is told apart from a slow one.
 *
 * This reads /proc, so it works on Linux; elsewhere {@link listWorkers} returns undefined and
 * callers fall back to verification with retries.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { firstError, parseConfig } from '../../conf/parser.js';

/** A worker of an nginx master, as /proc shows it. */
export interface NginxWorker {
  readonly pid: number;
  /** True once it stopped accepting (graceful shutdown). */
  readonly shuttingDown: boolean;
}

const run = promisify(execFile);

/** Compile-time paths of an nginx binary (`nginx -V`), cached per binary. */
const builtInPaths = new Map<string, Promise<{ prefix: string; pid: string }>>();

function nginxBuiltIns(nginx: string): Promise<{ prefix: string; pid: string }> {
  let cached = builtInPaths.get(nginx);
  if (cached === undefined) {
    cached = run(nginx, ['-V'], { timeout: 10_000 }).then(
      ({ stderr }) => ({
        prefix: /--prefix=(\S+)/.exec(stderr)?.[1] ?? '/usr/local/nginx',
        pid: /--pid-path=(\S+)/.exec(stderr)?.[1] ?? 'logs/nginx.pid',
      }),
      () => ({ prefix: '/usr/local/nginx', pid: 'logs/nginx.pid' }),
    );
    builtInPaths.set(nginx, cached);
  }
  return cached;
}

/** Where the master writes its pid: `pid` from `-g` or the main file, else the built-in path. */
export async function nginxPidPath(options: { nginx: string; conf: string; prefix: string | undefined; globals: string | undefined }): Promise<string> {
  const config = parseConfig(options.conf, options.globals === undefined ? {} : { params: options.globals });
  let pid: string | undefined;
  if (firstError(config.nodes) === undefined) {
    for (const node of config.nodes) if (node.kind === 'directive' && node.name === 'pid' && pid === undefined) pid = node.args[0];
  }
  const builtIn = await nginxBuiltIns(options.nginx);
  const path = pid ?? builtIn.pid;
  return isAbsolute(path) ? path : resolve(options.prefix ?? builtIn.prefix, path);
}

/** The master's pid from its pid file, or undefined. */
export function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The worker processes of `master`, or undefined where /proc cannot tell. */
export function listWorkers(master: number): NginxWorker[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const workers: NginxWorker[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // The second field is "(comm)" and may hold spaces; the parent pid is the second after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== master) continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'latin1').replace(/\0+/g, ' ');
      if (!title.includes('worker process')) continue;
      workers.push({ pid: Number(entry), shuttingDown: title.includes('shutting down') });
    } catch {
      // Exited while we looked.
    }
  }
  return workers;
}

/** Accepting workers of a master before a reload, to wait for their retirement afterwards. */
export function acceptingWorkers(master: number | undefined): Set<number> | undefined {
  if (master === undefined) return undefined;
  const workers = listWorkers(master);
  if (workers === undefined || workers.length === 0) return undefined;
  return new Set(workers.filter((w) => !w.shuttingDown).map((w) => w.pid));
}

/**
 * Waits until none of `before` still accepts: each has exited or is shutting down. Resolves
 * true when settled, false when `timeoutMs` passed first.
 */
export async function waitForReload(master: number, before: ReadonlySet<number>, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = listWorkers(master);
    if (now === undefined) return true;
    if (!now.some((worker) => before.has(worker.pid) && !worker.shuttingDown)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25, undefined, { signal });
  }
}
