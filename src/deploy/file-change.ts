/**
 * A change to files on this host, as the nginx and command targets make it: read what is there,
 * back it up, stage the new bytes beside each destination, let the target check the staged
 * files, rename them into place, and put the backups back if anything goes wrong afterwards.
 */
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { commitStagedFile, fsyncDirectory, removeIfExists, stageFile, temporarySiblings, writeFileAtomic, type FileMode } from '../core/atomic-write.js';
import { backupFile, backupStamp, pruneBackups } from './backup.js';
import { asDeployError } from './deploy-error.js';
import { isProcessAlive } from '../core/process-alive.js';
import type { CommandResult } from './run-command.js';
import { isSecretRole, type FileChange, type FileReport, type FileRole, type PrepareOptions, type TargetChange } from './targets/target.js';

/** Checks a set of staged files: live path → staged path. */
export type StagedValidator = (staged: ReadonlyMap<string, string>, signal?: AbortSignal) => Promise<CommandResult | undefined>;

/** Mode of a destination that does not exist yet: keys 0600, everything else 0644. */
export function defaultMode(role: FileRole): number {
  return isSecretRole(role) ? 0o600 : 0o644;
}

interface Previous {
  readonly bytes: Buffer;
  readonly mode: FileMode;
  readonly sha256: string;
}

interface Entry {
  readonly change: FileChange;
  /** The file written: the destination, or what it links to, so that a symlink stays a symlink. */
  readonly path: string;
  readonly sha256: string;
  readonly previous: Previous | undefined;
  readonly target: FileMode;
  backup?: string;
  staged?: string;
  committed: boolean;
}

/** {@link TargetChange} for files on the local filesystem. */
export class FileChangeSet implements TargetChange {
  readonly #entries: Entry[];
  readonly #options: PrepareOptions;
  readonly #validate: StagedValidator;

  private constructor(entries: Entry[], options: PrepareOptions, validate: StagedValidator) {
    this.#entries = entries;
    this.#options = options;
    this.#validate = validate;
  }

  /** Reads each destination's current content, mode and owner. */
  static async open(changes: readonly FileChange[], options: PrepareOptions, validate: StagedValidator): Promise<FileChangeSet> {
    const entries: Entry[] = [];
    for (const change of changes) {
      const path = await realpath(change.destination.path).catch(() => change.destination.path);
      await removeLeftovers(path);
      const previous = await readPrevious(path);
      // A destination keeps its mode and owner; a new one gets the role's default mode.
      const target = previous?.mode ?? { mode: defaultMode(change.destination.role) };
      entries.push({ change, path, sha256: sha256(change.data), previous, target, committed: false });
    }
    return new FileChangeSet(entries, options, validate);
  }

  files(): readonly FileReport[] {
    return this.#entries.map((entry) => {
      const { role, path } = entry.change.destination;
      const action = entry.previous === undefined ? 'create' : entry.previous.sha256 === entry.sha256 ? 'unchanged' : 'replace';
      return {
        role,
        path,
        ...(entry.path === path ? {} : { written: entry.path }),
        action,
        ...(isSecretRole(role) ? {} : { sha256: entry.sha256 }),
        ...(entry.backup === undefined ? {} : { backup: entry.backup }),
        mode: `0${(entry.target.mode & 0o7777).toString(8)}`,
      };
    });
  }

  unchanged(): boolean {
    return this.#entries.every((entry) => entry.previous?.sha256 === entry.sha256);
  }

  async backup(): Promise<void> {
    const stamp = backupStamp(this.#options.now);
    for (const entry of this.#entries) {
      if (entry.previous === undefined) continue;
      const { role } = entry.change.destination;
      const { path } = entry;
      const mode = isSecretRole(role) ? { ...entry.previous.mode, mode: 0o600 } : entry.previous.mode;
      try {
        entry.backup = await backupFile(path, entry.previous.bytes, mode, { stamp, hidden: role === 'config' });
      } catch (err) {
        throw asDeployError(err, 'HITLESS_ERR_DEPLOY_IO', `Cannot back up "${path}"`);
      }
    }
  }

  async stage(): Promise<void> {
    for (const entry of this.#entries) {
      const { path } = entry;
      try {
        entry.staged = await stageFile(path, entry.change.data, entry.target);
      } catch (err) {
        throw asDeployError(err, 'HITLESS_ERR_DEPLOY_IO', `Cannot stage "${path}"`);
      }
    }
  }

  validate(signal?: AbortSignal): Promise<CommandResult | undefined> {
    const staged = new Map<string, string>();
    for (const entry of this.#entries) {
      if (entry.staged !== undefined) staged.set(entry.change.destination.path, entry.staged);
    }
    return this.#validate(staged, signal);
  }

  async commit(): Promise<void> {
    for (const entry of this.#entries) {
      const { path } = entry;
      if (entry.staged === undefined) continue;
      try {
        await commitStagedFile(entry.staged, path);
      } catch (err) {
        throw asDeployError(err, 'HITLESS_ERR_DEPLOY_IO', `Cannot rename the staged file over "${path}"`);
      }
      delete entry.staged;
      entry.committed = true;
    }
  }

  async restore(): Promise<void> {
    const failures: string[] = [];
    for (const entry of this.#entries) {
      if (!entry.committed) continue;
      const { path } = entry;
      try {
        if (entry.previous === undefined) {
          await removeIfExists(path);
          await fsyncDirectory(dirname(path));
        } else {
          // The backup file is the record an operator would restore from; fall back to memory.
          const bytes = entry.backup === undefined ? entry.previous.bytes : await readFile(entry.backup).catch(() => entry.previous?.bytes);
          await writeFileAtomic(path, bytes ?? entry.previous.bytes, entry.previous.mode);
        }
        entry.committed = false;
      } catch (err) {
        failures.push(`"${path}": ${(err as Error).message}`);
      }
    }
    if (failures.length > 0) {
      throw asDeployError(new Error(failures.join('; ')), 'HITLESS_ERR_DEPLOY_ROLLBACK', 'Cannot restore the previous files');
    }
  }

  async finish(succeeded: boolean): Promise<void> {
    for (const entry of this.#entries) {
      if (entry.staged !== undefined) await removeIfExists(entry.staged).catch(() => undefined);
      delete entry.staged;
      if (succeeded && entry.backup !== undefined) {
        await pruneBackups(entry.path, this.#options.keepBackups).catch(() => undefined);
      }
    }
  }

  previous(role: FileRole): Buffer | undefined {
    return this.#entries.find((entry) => entry.change.destination.role === role)?.previous?.bytes;
  }
}

/** Removes what a deploy that died left beside `path`; the lock guarantees none is running. */
export async function removeLeftovers(path: string): Promise<void> {
  for (const leftover of await temporarySiblings(path)) {
    if (leftover.pid !== process.pid && !isProcessAlive(leftover.pid)) await removeIfExists(leftover.path).catch(() => undefined);
  }
}

async function readPrevious(path: string): Promise<Previous | undefined> {
  try {
    const info = await stat(path);
    const bytes = await readFile(path);
    return { bytes, mode: { mode: info.mode & 0o7777, uid: info.uid, gid: info.gid }, sha256: sha256(bytes) };
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
    throw asDeployError(err, 'HITLESS_ERR_DEPLOY_INPUT', `Cannot read "${path}"`);
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
