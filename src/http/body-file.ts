/**
 * Request bodies in files, as ngx_http_write_request_body() keeps them: with
 * `client_body_in_file_only on | clean`, and whenever a buffered body outgrows
 * `client_body_buffer_size`, the body read is written to a file under `client_body_temp_path`
 * (its levels of hashed subdirectories, a ten-digit name, mode 0600), which `$request_body_file`
 * names and `$request_body` then does not show. `on` keeps the file after the request; otherwise
 * it is removed when the request ends. proxy_pass, fastcgi_pass, uwsgi_pass and scgi_pass spool
 * it ({@link BodySpool}): past client_body_buffer_size the bytes go to the file as they arrive, so
 * memory holds at most about one buffer of the body, and the body is then read back from the file
 * in pieces to go upstream, from the start again for a retry ({@link readBodyFile}).
 */
import { randomInt } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errnoText } from '../core/errno.js';
import type { ConfBlockView } from '../conf/registry.js';

/** `client_body_temp_path path [level1 [level2 [level3]]]`, as ngx_conf_set_path_slot() reads it. */
export interface TempPath {
  /** Absolute, without a trailing slash. */
  readonly path: string;
  /** The lengths of the hashed subdirectory names, each 1 or more, at most 3 of them. */
  readonly levels: readonly number[];
}

/** The file names of one worker's temporary files: ngx_next_temp_number()'s counter. */
export class TempNumbers {
  // nginx's counter starts at 0 in shared memory; each worker here has its own, started at random,
  // and a name already taken (another worker's) moves it on by a random step, as nginx's collision does.
  #next = randomInt(1_000_000_000);

  next(collision: boolean): number {
    this.#next = (this.#next + (collision ? randomInt(1, 100_000) : 1)) % 10_000_000_000;
    return this.#next;
  }
}

/** What a level says about request bodies in files. */
export interface BodyFileSettings {
  readonly temp: TempPath;
  readonly inFileOnly: 'off' | 'on' | 'clean';
  /** `client_body_buffer_size`: a buffered body longer than this goes to a file. */
  readonly bufferSize: number;
  readonly numbers: TempNumbers;
}

/** A level's settings (client_body_temp_path, client_body_in_file_only, client_body_buffer_size). */
export function compileBodyFile(block: ConfBlockView, numbers: TempNumbers): BodyFileSettings {
  return { temp: block.get('client_body_temp_path'), inFileOnly: block.get('client_body_in_file_only'), bufferSize: block.get('client_body_buffer_size'), numbers };
}

/** True when a buffered body of `length` bytes is kept in a file (ngx_http_read_client_request_body()). */
export function bodyGoesToFile(settings: BodyFileSettings, length: number): boolean {
  return settings.inFileOnly !== 'off' || length > settings.bufferSize;
}

/** ngx_create_hashed_filename(): `path/3/12/0000000123` for levels 1 2, the subdirectories from the name's end. */
export function hashedFileName(temp: TempPath, name: string): string {
  const dirs: string[] = [];
  let end = name.length;
  for (const level of temp.levels) {
    dirs.push(name.slice(end - level, end));
    end -= level;
  }
  return join(temp.path, ...dirs, name);
}

/** A new temporary file, open for writing (`wx+`: for reading too). Rejects with nginx's [crit] text. */
async function createTempFile(settings: BodyFileSettings, flags: 'wx' | 'wx+' = 'wx'): Promise<{ handle: FileHandle; path: string }> {
  let path = hashedFileName(settings.temp, String(settings.numbers.next(false)).padStart(10, '0'));
  let created = false;
  for (let tries = 0; ; tries++) {
    let handle;
    try {
      handle = await open(path, flags, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && tries < 100) {
        path = hashedFileName(settings.temp, String(settings.numbers.next(true)).padStart(10, '0'));
        created = false;
        continue;
      }
      // ngx_create_path(): the missing directories, once, then the same name again.
      if (code === 'ENOENT' && !created) {
        created = true;
        try {
          await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        } catch (mkdirErr) {
          throw new Error(`mkdir() "${dirname(path)}" failed (${errnoText(mkdirErr)})`, { cause: mkdirErr });
        }
        continue;
      }
      throw new Error(`open() "${path}" failed (${errnoText(err)})`, { cause: err });
    }
    return { handle, path };
  }
}

/** A body spooled to a file, open for reading it back; `release` closes it (and removes it with `clean`). */
export interface SpoolFile {
  readonly path: string;
  readonly handle: FileHandle;
  readonly length: number;
  release(): void;
}

/** A spooled body: in memory (`parts`), or in a file. */
export type SpooledBody = { readonly parts: Buffer[]; readonly length: number } | { readonly file: SpoolFile; readonly length: number };

/**
 * A buffered request body as it is read (ngx_http_request_body_save_filter() and
 * ngx_http_write_request_body()): in memory while it fits in client_body_buffer_size (and
 * client_body_in_file_only is off); past it, what was read and all that follows goes to a
 * temporary file as it arrives, nginx's "a client request body is buffered to a temporary file"
 * logged once it is created. As ngx_open_tempfile() does, the file is removed from its directory
 * at once unless client_body_in_file_only keeps it (on, clean): it lives on as the open handle. While writes are behind by more than a buffer, {@link push} says to
 * hold the client back until {@link ondrain}.
 */
export class BodySpool {
  readonly #settings: BodyFileSettings;
  readonly #log: (level: 'warn' | 'notice', message: string) => void;
  #parts: Buffer[] = [];
  #length = 0;
  /** Bytes taken but not yet written to the file. */
  #queued = 0;
  #file: Promise<{ handle: FileHandle; path: string }> | undefined;
  /** The writes so far, in order; the last one settles after all before it. */
  #writes: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #aborted = false;
  /** Called once the writes caught up after {@link push} returned false. */
  ondrain: (() => void) | undefined;

  constructor(settings: BodyFileSettings, log: (level: 'warn' | 'notice', message: string) => void) {
    this.#settings = settings;
    this.#log = log;
  }

  /** Bytes taken so far. */
  get length(): number {
    return this.#length;
  }

  /** Takes the next bytes of the body (copied); false when the caller should wait for {@link ondrain}. */
  push(data: Buffer): boolean {
    const piece = Buffer.from(data);
    this.#length += piece.length;
    this.#parts.push(piece);
    if (this.#file === undefined && !bodyGoesToFile(this.#settings, this.#length)) return true;
    // The first time: all that was kept in memory goes to the file with this piece.
    this.#queued += this.#file === undefined ? this.#length : piece.length;
    this.#flush();
    return this.#queued <= this.#settings.bufferSize;
  }

  /** The whole body is in: resolves once it is all in its place. Rejects with nginx's [crit] text. */
  async end(): Promise<SpooledBody> {
    if (this.#file === undefined && !bodyGoesToFile(this.#settings, this.#length)) return { parts: this.#parts, length: this.#length };
    // client_body_in_file_only with an empty body: the file is made all the same.
    this.#open();
    this.#flush();
    await this.#writes;
    const failure = this.#failure;
    if (failure !== undefined) {
      this.abort();
      throw failure;
    }
    const { handle, path } = await (this.#file as Promise<{ handle: FileHandle; path: string }>);
    const clean = this.#settings.inFileOnly === 'clean';
    const release = (): void => {
      void handle.close().catch(() => undefined);
      if (clean) void unlink(path).catch(() => undefined);
    };
    return { file: { path, handle, length: this.#length, release }, length: this.#length };
  }

  /** The request is gone: the file, if any, is closed and removed. */
  abort(): void {
    this.#aborted = true;
    this.#parts = [];
    const file = this.#file;
    if (file === undefined) return;
    const keep = this.#settings.inFileOnly === 'on';
    void this.#writes
      .then(async () => {
        const { handle, path } = await file;
        await handle.close().catch(() => undefined);
        if (!keep) await unlink(path).catch(() => undefined);
      })
      .catch(() => undefined);
  }

  #open(): Promise<{ handle: FileHandle; path: string }> {
    this.#file ??= createTempFile(this.#settings, 'wx+').then(async (created) => {
      const fileOnly = this.#settings.inFileOnly !== 'off';
      if (!fileOnly) await unlink(created.path).catch(() => undefined);
      this.#log(fileOnly ? 'notice' : 'warn', `a client request body is buffered to a temporary file ${created.path}`);
      return created;
    });
    return this.#file;
  }

  /** Writes what is queued, after the writes before it. */
  #flush(): void {
    const parts = this.#parts;
    if (parts.length === 0) return;
    this.#parts = [];
    const bytes = parts.reduce((sum, part) => sum + part.length, 0);
    const file = this.#open();
    this.#writes = this.#writes.then(async () => {
      if (this.#failure !== undefined || this.#aborted) return;
      const { handle, path } = await file;
      try {
        for (let at = 0; at < parts.length; ) {
          // writev() takes at most IOV_MAX pieces; a short write is written on from where it stopped.
          const batch = parts.slice(at, at + 1024);
          const size = batch.reduce((sum, part) => sum + part.length, 0);
          const { bytesWritten } = await handle.writev(batch);
          if (bytesWritten < size) {
            const rest = Buffer.concat(batch).subarray(bytesWritten);
            await handle.write(rest, 0, rest.length);
          }
          at += batch.length;
        }
      } catch (err) {
        this.#failure = new Error(`write() "${path}" failed (${errnoText(err)})`, { cause: err });
      }
      this.#queued -= bytes;
      if (this.#queued <= this.#settings.bufferSize) {
        const drained = this.ondrain;
        this.ondrain = undefined;
        drained?.();
      }
    }).catch((err: unknown) => {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
      const drained = this.ondrain;
      this.ondrain = undefined;
      drained?.();
    });
  }
}

/** The size of the pieces a spooled body is read back in, to an upstream. */
export const BODY_FILE_PIECE_BYTES = 64 * 1024;

/**
 * Calls `resume` once `stream` drains or closes, whichever comes first: the wait of a body read
 * back from its file ({@link readBodyFile}) when the upstream's buffer is full.
 */
export function resumeOnDrain(stream: EventEmitter, resume: () => void): void {
  const go = (): void => {
    stream.off('drain', go);
    stream.off('close', go);
    resume();
  };
  stream.once('drain', go);
  stream.once('close', go);
}

/**
 * Reads a spooled body back in pieces of at most `size` bytes, from the start (a retry reads it
 * again); `piece` returns false to wait for its `resume` before the next. `done` gets nginx's
 * [crit] text when a read fails.
 */
export function readBodyFile(file: SpoolFile, size: number, piece: (data: Buffer, resume: () => void) => boolean, done: (err: Error | undefined) => void, stopped: () => boolean): void {
  const run = async (): Promise<void> => {
    for (let at = 0; at < file.length; ) {
      if (stopped()) return;
      const buffer = Buffer.allocUnsafe(Math.min(size, file.length - at));
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.handle.read(buffer, 0, buffer.length, at));
      } catch (err) {
        throw new Error(`pread() "${file.path}" failed (${errnoText(err)})`, { cause: err });
      }
      if (bytesRead === 0) throw new Error(`pread() "${file.path}" returned only ${at} bytes instead of ${file.length}`);
      at += bytesRead;
      if (stopped()) return;
      await new Promise<void>((resolve) => {
        if (piece(buffer.subarray(0, bytesRead), resolve)) resolve();
      });
    }
    if (!stopped()) done(undefined);
  };
  run().catch((err: unknown) => {
    if (!stopped()) done(err instanceof Error ? err : new Error(String(err)));
  });
}
