/**
 * Backups of the files a deploy replaces: `<file>.hitless-bak.<timestamp>` beside the file, with
 * its mode and owner (a private key's backup is always 0600), the newest N kept.
 *
 * A configuration file's backup is hidden (`.<file>.hitless-bak.<timestamp>`): Debian's
 * `include sites-enabled/*;` would otherwise load the backup as a second copy of the vhost.
 */
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDirectory, removeIfExists, writeNewFile, type FileMode } from '../core/atomic-write.js';

/** How many backups of each file are kept by default. */
export const DEFAULT_KEEP_BACKUPS = 5;

const BACKUP_TAG = '.hitless-bak.';

/** The timestamp in backup names: UTC, sortable as text (`20240102T030405.678Z`). */
export function backupStamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '');
}

/** The backup name of `path` for `stamp`, hidden for configuration files. */
export function backupPath(path: string, stamp: string, hidden: boolean): string {
  return join(dirname(path), `${hidden ? '.' : ''}${basename(path)}${BACKUP_TAG}${stamp}`);
}

/**
 * Copies `path` to its backup name: a new file (O_EXCL, so an existing backup is never
 * overwritten), written, fsynced, with `mode`. Returns the backup's path.
 */
export async function backupFile(path: string, bytes: Uint8Array, mode: FileMode, options: { stamp: string; hidden: boolean }): Promise<string> {
  let target = backupPath(path, options.stamp, options.hidden);
  for (let n = 1; ; n++) {
    try {
      await writeNewFile(target, bytes, mode);
      break;
    } catch (err) {
      if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST') || n > 20) throw err;
      target = backupPath(path, `${options.stamp}-${n}`, options.hidden);
    }
  }
  await fsyncDirectory(dirname(path));
  return target;
}

/** Every backup of `path` (both spellings), oldest first. */
export async function listBackups(path: string): Promise<string[]> {
  const dir = dirname(path);
  const name = basename(path);
  const prefixes = [`${name}${BACKUP_TAG}`, `.${name}${BACKUP_TAG}`];
  const entries = await readdir(dir);
  return entries
    .flatMap((entry) => {
      const prefix = prefixes.find((p) => entry.startsWith(p));
      return prefix === undefined ? [] : [{ entry, stamp: entry.slice(prefix.length) }];
    })
    .sort((a, b) => (a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0))
    .map(({ entry }) => join(dir, entry));
}

/** Deletes all but the newest `keep` backups of `path`; returns the paths removed. */
export async function pruneBackups(path: string, keep: number): Promise<string[]> {
  const backups = await listBackups(path);
  const doomed = backups.slice(0, Math.max(0, backups.length - keep));
  for (const each of doomed) await removeIfExists(each);
  return doomed;
}
