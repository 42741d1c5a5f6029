/**
 * Request bodies in files, as ngx_http_write_request_body() keeps them: with
 * `client_body_in_file_only on | clean`, and whenever a buffered body outgrows
 * `client_body_buffer_size`, the body read is written to a file under `client_body_temp_path`
 * (its levels of hashed subdirectories, a ten-digit name, mode 0600), which `$request_body_file`
 * names and `$request_body` then does not show. `on` keeps the file after the request; otherwise
 * it is removed when the request ends. hitless reads the body into memory first and sends it
 * upstream from there; the file is written from that copy before the upstream is asked.
 */
import { randomInt } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
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

/** A body written to a file: its path, and how it is disposed of when the request ends. */
export interface BodyFile {
  readonly path: string;
  /** Removes the file unless `client_body_in_file_only on` keeps it (ngx_pool_delete_file()). */
  release(): void;
}

/**
 * Writes `parts` to a new temporary file (ngx_create_temp_file(): O_CREAT|O_EXCL, 0600, the
 * hashed subdirectories created 0700 when missing). Rejects with nginx's [crit] text.
 */
export async function writeBodyFile(settings: BodyFileSettings, parts: readonly Buffer[]): Promise<BodyFile> {
  let path = hashedFileName(settings.temp, String(settings.numbers.next(false)).padStart(10, '0'));
  let created = false;
  for (let tries = 0; ; tries++) {
    let handle;
    try {
      handle = await open(path, 'wx', 0o600);
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
    try {
      await handle.writev(parts as Buffer[]);
    } catch (err) {
      await handle.close();
      await unlink(path).catch(() => undefined);
      throw new Error(`write() "${path}" failed (${errnoText(err)})`, { cause: err });
    }
    await handle.close();
    const keep = settings.inFileOnly === 'on';
    return {
      path,
      release: () => {
        if (!keep) void unlink(path).catch(() => undefined);
      },
    };
  }
}
