/**
 * Atomic replacement of a file: write a temporary file in the destination's own directory (so
 * that rename(2) cannot cross a filesystem), fsync it, give it the destination's mode and owner,
 * rename it over the destination, fsync the directory so that the rename survives a crash.
 *
 * Every temporary file is created by open(2) with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, so a
 * private key is never readable by anyone else, not even for the instant between open and chmod;
 * the mode is only ever widened afterwards, to the destination's. Temporary names start with a
 * dot, which glob(3) patterns such as nginx's `include sites-enabled/*;` do not match.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Mode and owner a file should end up with. */
export interface FileMode {
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
  /** Owner; default the process's, unchanged. */
  readonly uid?: number | undefined;
  /** Group; default the process's (or the directory's, if it is setgid), unchanged. */
  readonly gid?: number | undefined;
}

/** The mode every temporary file is created with, whatever it will end up as. */
export const CREATE_MODE = 0o600;

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A unique hidden name beside `path`: `.name.hitless-<tag>.<pid>.<random>`. */
export function siblingPath(path: string, tag: string): string {
  return join(dirname(path), `.${basename(path)}.hitless-${tag}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

/**
 * Writes `data` to a new file at `path` that must not exist yet: created 0600, written, fsynced,
 * then chown'ed and chmod'ed to `target`. On failure the partial file is removed.
 */
export async function writeNewFile(path: string, data: Uint8Array, target: FileMode): Promise<void> {
  const handle = await open(path, CREATE_FLAGS, CREATE_MODE);
  try {
    await handle.writeFile(data);
    await handle.sync();
    const stat = await handle.stat();
    const uid = target.uid ?? stat.uid;
    const gid = target.gid ?? stat.gid;
    // chown before chmod: chown(2) may clear set-id bits that chmod is about to set.
    if (uid !== stat.uid || gid !== stat.gid) await handle.chown(uid, gid);
    if ((stat.mode & 0o7777) !== target.mode) await handle.chmod(target.mode);
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
}

/** Writes a temporary sibling of `destination` holding `data`, ready to be renamed; returns its path. */
export async function stageFile(destination: string, data: Uint8Array, target: FileMode, tag = 'tmp'): Promise<string> {
  const path = siblingPath(destination, tag);
  await writeNewFile(path, data, target);
  return path;
}

/** Renames a staged file over its destination and makes the rename durable. */
export async function commitStagedFile(staged: string, destination: string): Promise<void> {
  await rename(staged, destination);
  await fsyncDirectory(dirname(destination));
}

/** Replaces `destination` with `data` atomically: readers see the old bytes or the new, never a mix. */
export async function writeFileAtomic(destination: string, data: Uint8Array, target: FileMode): Promise<void> {
  const staged = await stageFile(destination, data, target);
  try {
    await commitStagedFile(staged, destination);
  } catch (err) {
    await unlink(staged).catch(() => undefined);
    throw err;
  }
}

/** fsync(2) on a directory, so that entries created or renamed in it survive a crash. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes a file if it exists. */
export async function removeIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'ENOENT')) throw err;
  }
}

/**
 * Hidden temporary siblings of `path` (`siblingPath` names, any tag) and the pid that made each,
 * so that a deploy can remove what a crashed one left behind.
 */
export async function temporarySiblings(path: string): Promise<{ path: string; pid: number }[]> {
  const prefix = `.${basename(path)}.hitless-`;
  let entries: string[];
  try {
    entries = await readdir(dirname(path));
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    if (!entry.startsWith(prefix)) return [];
    const match = /^(?:tmp|stage)\.(\d+)\.[0-9a-f]{8}$/.exec(entry.slice(prefix.length));
    return match === null ? [] : [{ path: join(dirname(path), entry), pid: Number(match[1]) }];
  });
}
