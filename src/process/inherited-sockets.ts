/**
 * Listening sockets handed from one master process to the next: to the detached child when the
 * master daemonizes, and to a new binary on SIGUSR2. nginx passes the descriptors through exec()
 * and names them in the `NGINX` environment variable (`fd;fd;`, src/core/nginx.c
 * `ngx_add_inherited_sockets()`); hitless places each descriptor at a fixed slot of the child's
 * stdio (Node's `spawn()` dup2()s an integer stdio entry into the child) and names them, with the
 * key each one is listening for, in the `HITLESS_INHERITED` variable.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

/** The environment variable that names the inherited sockets. */
export const INHERITED_ENV = 'HITLESS_INHERITED';

/** Why a master was handed sockets. */
export type InheritedVia = 'daemon' | 'upgrade' | 'rescue';

/**
 * How a worker starts its master again after the master died (see worker.ts): the master's own
 * command line and directory, which it hands each worker in its `serve` message.
 */
export interface MasterCommand {
  readonly execArgv: readonly string[];
  readonly argv: readonly string[];
  readonly cwd: string;
}


/** What a master inherited from the process that started it. */
export interface InheritedSockets {
  readonly via: InheritedVia;
  /** The pid of the master that started this one. */
  readonly parent: number;
  readonly sockets: readonly { readonly key: string; readonly fd: number }[];
}

/** The first stdio slot used for a socket: 0-2 are stdio, 3 the IPC channel (or nothing). */
const FIRST_SOCKET_FD = 4;

/**
 * Reads and removes the inherited-sockets variable, so that workers and later binaries do not see
 * it. Undefined when this master was started by an operator.
 */
export function takeInheritedSockets(env: NodeJS.ProcessEnv = process.env): InheritedSockets | undefined {
  const text = env[INHERITED_ENV];
  if (text === undefined) return undefined;
  delete env[INHERITED_ENV];
  const parsed = JSON.parse(text) as InheritedSockets;
  return { via: parsed.via, parent: parsed.parent, sockets: parsed.sockets.map(({ key, fd }) => ({ key, fd })) };
}

/** Options of {@link spawnMasterWithSockets}. */
export interface SpawnMasterOptions {
  readonly via: InheritedVia;
  readonly sockets: readonly { readonly key: string; readonly fd: number }[];
  /** `setsid()` the child, as `ngx_daemon()` does. */
  readonly detached: boolean;
  /** stdin, stdout and stderr of the child. */
  readonly stdio: readonly ['ignore' | 'inherit', 'ignore' | 'inherit', 'ignore' | 'inherit' | number];
  /** Open an IPC channel to the child (the daemon reports back that it is up). */
  readonly ipc: boolean;
  /** The command to run; default this very program with its flags and arguments. */
  readonly command?: MasterCommand;
}

/**
 * Starts this very program again (`process.execPath`, its flags and its arguments: the binary on
 * disk now, which for an upgrade is the new one), handing it the listening sockets.
 */
export function spawnMasterWithSockets(options: SpawnMasterOptions): ChildProcess {
  const stdio: StdioOptions = [...options.stdio, options.ipc ? 'ipc' : 'ignore'];
  const named = options.sockets.map((socket, i) => {
    stdio.push(socket.fd);
    return { key: socket.key, fd: FIRST_SOCKET_FD + i };
  });
  const inherited: InheritedSockets = { via: options.via, parent: process.pid, sockets: named };
  const command = options.command ?? { execArgv: process.execArgv, argv: process.argv.slice(1), cwd: process.cwd() };
  return spawn(process.execPath, [...command.execArgv, ...command.argv], {
    cwd: command.cwd,
    detached: options.detached,
    stdio,
    env: { ...process.env, [INHERITED_ENV]: JSON.stringify(inherited) },
  });
}
