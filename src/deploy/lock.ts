/**
 * The deploy lock: one deploy per target at a time. The lock is a file holding the owner's pid,
 * host and start time, made complete in a temporary file and then link(2)ed into place, which
 * fails with EEXIST when the lock is held: no reader ever sees a half-written lock. A lock whose
 * pid is gone on this host is stale and is broken; a lock from another host is never assumed dead.
 */
import { isProcessAlive } from '../core/process-alive.js';
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeployError } from './deploy-error.js';
import { removeIfExists } from '../core/atomic-write.js';

/** Options of {@link DeployLock.acquire}. */
export interface LockOptions {
  /** How long to wait for another deploy to finish, in ms; default 60000. 0 fails at once. */
  readonly timeoutMs?: number | undefined;
  /** How often to look again, in ms; default 100. */
  readonly pollMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Who holds a lock, as read from the lock file. */
export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

/** A held deploy lock; {@link DeployLock.release} gives it back. */
export class DeployLock {
  /** The lock file. */
  readonly path: string;
  readonly #content: string;
  #held = true;

  private constructor(path: string, content: string) {
    this.path = path;
    this.#content = content;
  }

  /** Takes the lock at `path`, waiting for its holder and breaking it if the holder died. */
  static async acquire(path: string, options: LockOptions = {}): Promise<DeployLock> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const pollMs = options.pollMs ?? 100;
    const content = `${process.pid}\n${hostname()}\n${new Date().toISOString()}\n`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await tryCreate(path, content)) return new DeployLock(path, content);
      const owner = await readLockOwner(path);
      if (owner === undefined || isStale(owner)) {
        await breakStaleLock(path, owner);
        continue;
      }
      if (Date.now() >= deadline || options.signal?.aborted) {
        throw new DeployError(
          'HITLESS_ERR_DEPLOY_LOCK',
          `Another deploy holds the lock "${path}": pid ${owner.pid} on ${owner.host} since ${owner.since}`,
        );
      }
      await sleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
    }
  }

  /** True until {@link release}. */
  get held(): boolean {
    return this.#held;
  }

  /** Removes the lock file, if it is still ours. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    const now = await readFile(this.path, 'utf8').catch(() => undefined);
    if (now === this.#content) await removeIfExists(this.path);
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(temp, content, { flag: 'wx', mode: 0o644 });
    await link(temp, path);
    return true;
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'EEXIST') return false;
    throw new DeployError('HITLESS_ERR_DEPLOY_LOCK', `Cannot create the lock "${path}": ${(err as Error).message}`, { cause: err });
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** Reads the owner of a lock file; undefined when it is gone or unreadable as a lock. */
export async function readLockOwner(path: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const [pid, host, since] = text.split('\n');
  const number = Number(pid);
  if (!Number.isSafeInteger(number) || number <= 0) return undefined;
  return { pid: number, host: host ?? '', since: since ?? '' };
}

/** A lock is stale when its owner ran on this host and no process with its pid exists any more. */
export function isStale(owner: LockOwner): boolean {
  return owner.host === hostname() && !isProcessAlive(owner.pid);
}

/**
 * Moves a stale lock aside and deletes it. Renaming first means that of two deploys breaking
 * the same stale lock only one succeeds; if what was moved turns out not to be the stale lock
 * (a third deploy took the lock in between), it is linked back.
 */
async function breakStaleLock(path: string, stale: LockOwner | undefined): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return; // Someone else broke it, or it was released: try again.
  }
  const moved = await readLockOwner(aside);
  const same = stale === undefined ? moved === undefined : moved?.pid === stale.pid && moved.since === stale.since;
  if (!same) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}
