/**
 * `open_log_file_cache` at run time: the descriptors of access logs whose paths have variables,
 * kept open in least recently used order, as ngx_open_cached_file() keeps them for `of.log`.
 */
import { closeSync, fstatSync, openSync, statSync, writeSync } from 'node:fs';
import type { OpenLogFileCache } from './log-module.js';

interface CachedLogFile {
  fd: number | undefined;
  uses: number;
  accessed: number;
  checked: number;
  ino: number;
}

/** `open_log_file_cache`: an LRU of the descriptors of log paths with variables (ngx_open_cached_file() with `of.log`). */
export class LogFileCache {
  readonly #spec: OpenLogFileCache;
  /** In least recently used order. */
  readonly #entries = new Map<string, CachedLogFile>();

  constructor(spec: OpenLogFileCache) {
    this.#spec = spec;
  }

  /** Appends `data` to `path`, opening it unless a valid descriptor is cached; throws what open(2) throws. */
  write(path: string, data: string): void {
    const now = Date.now();
    this.#expire(now);
    let entry = this.#entries.get(path);
    if (entry !== undefined) {
      this.#entries.delete(path);
      this.#entries.set(path, entry);
      entry.accessed = now;
      entry.uses++;
      if (entry.fd !== undefined && now - entry.checked >= this.#spec.validMs) {
        // After `valid`, a file renamed or removed away (rotation) is opened anew.
        let same = false;
        try {
          same = statSync(Buffer.from(path, 'latin1')).ino === entry.ino;
        } catch {
          same = false;
        }
        if (same) entry.checked = now;
        else {
          closeSync(entry.fd);
          entry.fd = undefined;
        }
      }
      if (entry.fd !== undefined) {
        writeSync(entry.fd, data, null, 'latin1');
        return;
      }
    }
    const fd = openAppend(path);
    if (entry === undefined) {
      // A path that could not be opened takes no place in the cache (ngx_open_cached_file() creates the entry after the open).
      if (this.#entries.size >= this.#spec.max) this.#evictOldest();
      entry = { fd: undefined, uses: 1, accessed: now, checked: now, ino: 0 };
      this.#entries.set(path, entry);
    }
    try {
      writeSync(fd, data, null, 'latin1');
    } finally {
      if (entry.uses >= this.#spec.minUses) {
        entry.fd = fd;
        entry.ino = fstatSync(fd).ino;
        entry.checked = now;
      } else closeSync(fd);
    }
  }

  /** Closes every cached descriptor. */
  close(): void {
    for (const entry of this.#entries.values()) if (entry.fd !== undefined) closeSync(entry.fd);
    this.#entries.clear();
  }

  #expire(now: number): void {
    for (const entry of this.#entries.values()) {
      if (now - entry.accessed <= this.#spec.inactiveMs) return;
      this.#evictOldest();
    }
  }

  #evictOldest(): void {
    const [path, entry] = this.#entries.entries().next().value ?? [];
    if (path === undefined || entry === undefined) return;
    if (entry.fd !== undefined) closeSync(entry.fd);
    this.#entries.delete(path);
  }
}

/** Opens for appending, creating the file but never its directory, as nginx opens a log with variables. */
export function openAppend(path: string): number {
  return openSync(Buffer.from(path, 'latin1'), 'a', 0o644);
}
