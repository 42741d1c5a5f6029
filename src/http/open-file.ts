/**
 * Opening the file of a request as ngx_open_cached_file() and ngx_open_file_wrapper() do: the
 * `disable_symlinks` check of every path component, open(2) and fstat(2), through the level's
 * `open_file_cache` when it has one. With `aio off` (nginx's default) the system calls are made
 * on the event loop, as nginx makes them in its worker: for a file in the page cache they cost
 * microseconds, where a round trip through libuv's thread pool costs tens (bench/static: 1 KiB
 * files went from about 9,500 to 43,000 requests/s). `aio on` and `aio threads` move them to the
 * thread pool, as nginx moves its reads to its thread pool. The chunks of a large body are read on
 * the pool whatever `aio` says (static.ts): there the copy, not the call, is the cost.
 */
import { close, closeSync, fstat, fstatSync, lstatSync, open, openSync, read, readSync, statSync, type Stats } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import { promisify } from 'node:util';

/** How a level opens its files. */
export interface OpenSettings {
  readonly symlinks: 'off' | 'on' | 'if_not_owner';
  /** The `from=` prefix, evaluated for this request; '' checks every component. */
  readonly from: string;
  /** `aio on | threads`: system calls on libuv's thread pool instead of the event loop. */
  readonly threads: boolean;
}

/** An open file of a request; `release()` once, when the response no longer reads it. */
export interface OpenedFile {
  readonly fd: number;
  readonly info: Stats;
  release(): void;
}

/** The error disable_symlinks answers with: nginx's open() with O_NOFOLLOW fails with ELOOP. */
export class SymlinkRefused extends Error {
  readonly code = 'ELOOP';
  readonly errno = 40;
  readonly syscall = 'open';
}

/**
 * A link in a directory component under `disable_symlinks on`: nginx's openat() of it with
 * O_DIRECTORY|O_NOFOLLOW fails with ENOTDIR, which answers 404, not 403.
 */
class LinkNotDirectory extends Error {
  readonly code = 'ENOTDIR';
  readonly errno = 20;
  readonly syscall = 'openat';
}

/** The refusal of a link at `part`, the last component of the path or a directory on the way. */
function refusal(mode: 'on' | 'if_not_owner', last: boolean): Error {
  if (mode === 'if_not_owner') return new SymlinkRefused('symbolic link owner differs');
  return last ? new SymlinkRefused('symbolic link refused') : new LinkNotDirectory('symbolic link in a directory component');
}

/** The path's bytes: request paths are kept as latin1 strings of their bytes. */
export function pathBytes(path: string): Buffer {
  return Buffer.from(path, 'latin1');
}

/** The components after `from=` that disable_symlinks checks (ngx_open_file_wrapper()'s walk). */
function componentsOf(path: string, from: string): string[] {
  let start = 1;
  if (from !== '' && path.startsWith(from)) start = from.length + 1;
  const parts: string[] = [];
  for (let i = start; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    const part = path.slice(0, i);
    if (part === '' || part.endsWith('/')) continue;
    parts.push(part);
  }
  return parts;
}

/**
 * `disable_symlinks`: refuses a link (on), or a link owned by another user than its target
 * (if_not_owner), at each component after `from=`. A missing component is left to open().
 */
export function checkSymlinksSync(path: string, settings: OpenSettings): void {
  if (settings.symlinks === 'off') return;
  const parts = componentsOf(path, settings.from);
  for (const [i, part] of parts.entries()) {
    let info: Stats;
    try {
      info = lstatSync(pathBytes(part));
    } catch {
      return;
    }
    if (!info.isSymbolicLink()) continue;
    if (settings.symlinks === 'on' || statSync(pathBytes(part)).uid !== info.uid) throw refusal(settings.symlinks, i === parts.length - 1);
  }
}

/** {@link checkSymlinksSync} on the thread pool. */
export async function checkSymlinks(path: string, settings: OpenSettings): Promise<void> {
  if (settings.symlinks === 'off') return;
  if (!settings.threads) return checkSymlinksSync(path, settings);
  const parts = componentsOf(path, settings.from);
  for (const [i, part] of parts.entries()) {
    let info: Stats;
    try {
      info = await lstat(pathBytes(part));
    } catch {
      return;
    }
    if (!info.isSymbolicLink()) continue;
    if (settings.symlinks === 'on' || (await stat(pathBytes(part))).uid !== info.uid) throw refusal(settings.symlinks, i === parts.length - 1);
  }
}

/** stat(2) of a path after the symlink check: what try_files and index test (of.test_only). */
export async function statPath(path: string, settings: OpenSettings): Promise<Stats> {
  if (!settings.threads) {
    checkSymlinksSync(path, settings);
    return statSync(pathBytes(path));
  }
  await checkSymlinks(path, settings);
  return stat(pathBytes(path));
}

/** The error's `syscall` made nginx's: the fstat of an opened file reports as fstat. */
function tagged(err: unknown, syscall: string): unknown {
  if (err instanceof Error && !('syscall' in err)) Object.assign(err, { syscall });
  return err;
}

/** open(2) and fstat(2) of a path after the symlink check, with no cache; the caller closes `fd`. */
export async function openAndStat(path: string, settings: OpenSettings): Promise<{ fd: number; info: Stats }> {
  if (!settings.threads) {
    checkSymlinksSync(path, settings);
    const fd = openSync(pathBytes(path), 'r');
    try {
      return { fd, info: fstatSync(fd) };
    } catch (err) {
      closeSync(fd);
      throw tagged(err, 'fstat');
    }
  }
  await checkSymlinks(path, settings);
  // Plain descriptors, not FileHandles: the cache keeps them past the request that opened them.
  const fd = await openAsync(pathBytes(path), 'r');
  try {
    return { fd, info: await fstatAsync(fd) };
  } catch (err) {
    close(fd, () => undefined);
    throw tagged(err, 'fstat');
  }
}

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const readAsync = promisify(read);

/** Closes a descriptor taken from {@link openAndStat}. */
export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // EBADF cannot happen for a descriptor owned here; EIO on close of a read-only file means nothing
  }
}

/** Opens a request's file with no cache: open and fstat now, close on release. */
export async function openFile(path: string, settings: OpenSettings): Promise<OpenedFile> {
  const { fd, info } = await openAndStat(path, settings);
  let released = false;
  return {
    fd,
    info,
    release: () => {
      if (released) return;
      released = true;
      closeFd(fd);
    },
  };
}

/** pread(2) into `buffer`, on the event loop or the thread pool; resolves to the bytes read. */
export function readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number, threads: boolean): number | Promise<number> {
  if (!threads) return readSync(fd, buffer, offset, length, position);
  return readAsync(fd, buffer, offset, length, position).then((result) => result.bytesRead);
}
