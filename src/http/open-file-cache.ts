/**
 * `open_file_cache`: nginx's ngx_open_file_cache.c. A level's cache keeps, per path, the open
 * descriptor and its fstat(2), or the error of the lookup (`open_file_cache_errors on`), so that
 * a hit costs no system call. An entry is trusted for `open_file_cache_valid`, then revalidated
 * with a stat(2): the same inode keeps its descriptor, another one is opened. A descriptor stays
 * open once its entry has been used `open_file_cache_min_uses` times within `inactive`; entries
 * not used for `inactive` are dropped, and the least recently used one when `max` is reached. A
 * descriptor still read by a response when its entry goes is closed when that response ends
 * (ngx_close_cached_file()'s `close` flag).
 */
import { statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { closeFd, openAndStat, pathBytes, checkSymlinks, checkSymlinksSync, type OpenedFile, type OpenSettings } from './open-file.js';

/** A level's use of the cache: `open_file_cache_valid` (seconds), `_min_uses`, `_errors`. */
export interface OpenFileCacheUse {
  readonly valid: number;
  readonly minUses: number;
  readonly errors: boolean;
}

/** A cached descriptor and the responses reading it. */
interface Descriptor {
  readonly fd: number;
  count: number;
  /** Its entry let it go: the last reader closes it (ngx_close_cached_file()'s `close` flag). */
  detached: boolean;
}

interface Entry {
  readonly key: string;
  descriptor: Descriptor | undefined;
  info: Stats | undefined;
  err: unknown;
  created: number;
  accessed: number;
  uses: number;
}

/** The errors nginx caches: those of the file, not of the process (EMFILE, ENFILE, ENOMEM). */
const CACHEABLE_ERRORS = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'EACCES', 'ELOOP', 'EMLINK']);

function errCode(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
}

/** One level's open file cache; lives as long as the generation that compiled it. */
export class OpenFileCache {
  readonly #max: number;
  readonly #inactive: number;
  /** In least recently used order: the first entry is the oldest. */
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  /** `max` entries, `inactive` seconds; `now` gives seconds, as nginx's ngx_time(). */
  constructor(max: number, inactive: number, now: () => number = () => Math.floor(Date.now() / 1000)) {
    this.#max = max;
    this.#inactive = inactive;
    this.#now = now;
  }

  /** The number of entries, for tests. */
  get size(): number {
    return this.#entries.size;
  }

  /** ngx_open_cached_file(): the entry of `path`, opened or revalidated as needed. */
  async open(path: string, settings: OpenSettings, use: OpenFileCacheUse): Promise<OpenedFile> {
    const now = this.#now();
    this.#expire(now);
    // The symlink settings are part of the key: two levels may share a cache and differ in them.
    const key = `${settings.symlinks}\0${settings.from}\0${path}`;
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      entry.uses++;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      if (now - entry.created >= use.valid) await this.#revalidate(entry, path, settings, use, now);
      else if (entry.descriptor === undefined && entry.err === undefined) await this.#reopen(entry, path, settings, now);
    } else {
      if (this.#entries.size >= this.#max) this.#evictOldest();
      entry = { key, descriptor: undefined, info: undefined, err: undefined, created: now, accessed: now, uses: 1 };
      await this.#reopen(entry, path, settings, now);
      if (entry.err === undefined || use.errors) {
        // Two lookups of one path on the thread pool may both have missed: the later one stays.
        const other = this.#entries.get(key);
        if (other !== undefined) this.#detach(other);
        this.#entries.set(key, entry);
      }
    }
    entry.accessed = now;
    if (entry.err !== undefined) throw entry.err;
    return this.#lease(entry, use.minUses);
  }

  /** Closes every descriptor no response is reading; the rest close when their response ends. */
  close(): void {
    for (const entry of this.#entries.values()) this.#detach(entry);
    this.#entries.clear();
  }

  async #reopen(entry: Entry, path: string, settings: OpenSettings, now: number): Promise<void> {
    try {
      const { fd, info } = await openAndStat(path, settings);
      entry.descriptor = { fd, count: 0, detached: false };
      entry.info = info;
      entry.err = undefined;
    } catch (err) {
      if (!CACHEABLE_ERRORS.has(errCode(err))) {
        // Not the file's fault: nothing is cached, the next request tries again.
        this.#entries.delete(entry.key);
        throw err;
      }
      entry.err = err;
      entry.info = undefined;
    }
    entry.created = now;
  }

  /** ngx_open_and_stat_file() with a cached descriptor: a stat(2) says whether it is still the file. */
  async #revalidate(entry: Entry, path: string, settings: OpenSettings, use: OpenFileCacheUse, now: number): Promise<void> {
    if (entry.descriptor !== undefined && entry.info !== undefined) {
      let info: Stats | undefined;
      try {
        if (settings.threads) {
          await checkSymlinks(path, settings);
          info = await stat(pathBytes(path));
        } else {
          checkSymlinksSync(path, settings);
          info = statSync(pathBytes(path));
        }
      } catch {
        info = undefined;
      }
      if (info !== undefined && info.ino === entry.info.ino && info.dev === entry.info.dev) {
        // ngx_file_uniq() unchanged: the descriptor is kept, the size and time are the new ones.
        entry.info = info;
        entry.created = now;
        return;
      }
    }
    this.#detach(entry);
    entry.uses = 1;
    await this.#reopen(entry, path, settings, now);
    if (entry.err !== undefined && !use.errors) this.#entries.delete(entry.key);
  }

  #lease(entry: Entry, minUses: number): OpenedFile {
    const descriptor = entry.descriptor as Descriptor;
    descriptor.count++;
    let released = false;
    return {
      fd: descriptor.fd,
      info: entry.info as Stats,
      release: () => {
        if (released) return;
        released = true;
        this.#release(entry, descriptor, minUses);
      },
    };
  }

  /** ngx_close_cached_file(): the descriptor stays open while its entry is used often enough. */
  #release(entry: Entry, descriptor: Descriptor, minUses: number): void {
    descriptor.count--;
    if (descriptor.count > 0) return;
    if (descriptor.detached) closeFd(descriptor.fd);
    else if (entry.uses < minUses) this.#detach(entry);
  }

  /** The entry gives up its descriptor: closed now, or by its last reader. */
  #detach(entry: Entry): void {
    const descriptor = entry.descriptor;
    if (descriptor === undefined) return;
    entry.descriptor = undefined;
    if (descriptor.count === 0) closeFd(descriptor.fd);
    else descriptor.detached = true;
  }

  #evictOldest(): void {
    const oldest = this.#entries.values().next();
    if (oldest.done === true) return;
    this.#entries.delete(oldest.value.key);
    this.#detach(oldest.value);
  }

  /** ngx_expire_old_cached_files(): entries not used for `inactive` go. */
  #expire(now: number): void {
    for (const entry of this.#entries.values()) {
      if (now - entry.accessed < this.#inactive) return;
      this.#entries.delete(entry.key);
      this.#detach(entry);
    }
  }
}

/** The caches of one generation, one per `open_file_cache` directive (inheriting levels share it). */
export class OpenFileCaches {
  readonly #caches = new Map<object, OpenFileCache>();

  /** The cache of a directive's value, made on first use. */
  of(value: { readonly max: number; readonly inactive: number }): OpenFileCache {
    let cache = this.#caches.get(value);
    if (cache === undefined) {
      cache = new OpenFileCache(value.max, value.inactive);
      this.#caches.set(value, cache);
    }
    return cache;
  }

  /** Closes every cached descriptor (the generation retires); those being read close after. */
  close(): void {
    for (const cache of this.#caches.values()) cache.close();
  }
}
