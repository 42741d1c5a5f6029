/**
 * The htpasswd files of `auth_basic_user_file`, read as `ngx_http_auth_basic_handler()` reads
 * them, and kept parsed between requests: every request opens the file (as nginx does, so a
 * removed or unreadable file answers at once), and the contents are read again only when the
 * file's device, inode, size or mtime changed.
 */
import { open } from 'node:fs/promises';

/** What looking a user up in a file found. */
export type UserLookup =
  | { readonly kind: 'found'; readonly hash: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'error'; readonly call: 'open' | 'pread'; readonly error: NodeJS.ErrnoException };

interface ParsedFile {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly users: ReadonlyMap<string, string>;
}

/** How many distinct paths (a user file named with variables) stay parsed at once. */
const MAX_FILES = 64;

/**
 * The sw_login / sw_passwd / sw_skip scan: a line is `user:hash[:anything]`; a line starting with
 * `#` or CR is a comment; the hash ends at LF, CR or `:`. The first line of a user wins.
 */
export function parseUserFile(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#' || line[0] === '\r') continue;
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const user = line.slice(0, colon);
    if (users.has(user)) continue;
    const rest = line.slice(colon + 1);
    const end = rest.search(/[\r:]/);
    users.set(user, end === -1 ? rest : rest.slice(0, end));
  }
  return users;
}

/** The user files of one generation, parsed once per change. */
export class UserFiles {
  readonly #parsed = new Map<string, ParsedFile>();

  /** The stored hash of `user` in the file at `path`, or why there is none. */
  async lookup(path: string, user: string): Promise<UserLookup> {
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      return { kind: 'error', call: 'open', error: err as NodeJS.ErrnoException };
    }
    try {
      const stat = await handle.stat();
      let parsed = this.#parsed.get(path);
      if (parsed === undefined || parsed.dev !== stat.dev || parsed.ino !== stat.ino || parsed.size !== stat.size || parsed.mtimeMs !== stat.mtimeMs) {
        const users = parseUserFile((await handle.readFile()).toString('latin1'));
        parsed = { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, users };
        this.#parsed.delete(path);
        if (this.#parsed.size >= MAX_FILES) this.#parsed.delete(this.#parsed.keys().next().value as string);
        this.#parsed.set(path, parsed);
      }
      const hash = parsed.users.get(user);
      return hash === undefined ? { kind: 'absent' } : { kind: 'found', hash };
    } catch (err) {
      return { kind: 'error', call: 'pread', error: err as NodeJS.ErrnoException };
    } finally {
      await handle.close();
    }
  }
}
