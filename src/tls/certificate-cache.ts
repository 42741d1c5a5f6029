/**
 * nginx's cache of TLS objects loaded per connection (`ngx_ssl_cache_connection_fetch()`,
 * ngx_event_openssl_cache.c), behind `ssl_certificate_cache` and `proxy_ssl_certificate_cache`:
 * a certificate file and a key file are one entry each, keyed by path. An entry younger than
 * `valid` is used without a look at the file; an older one is checked with stat() (inode and
 * mtime) and read again when it changed or is gone. A new entry first drops up to two entries
 * not used for `inactive`, and at `max` entries the least recently used one too. A key that
 * needed a passphrase is never kept (nginx's NGX_SSL_CACHE_DISABLED). Times are whole seconds,
 * as nginx's ngx_time().
 *
 * Certificates with variables and no cache (`off`, the default) read the files in every handshake.
 */
import { createHash, type KeyObject, type X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { parseTime } from '../core/parse.js';
import { checkKeyOf, openFailure, parseKey, parseLeaf, type LoadedKey } from './certificate-files.js';

/** `*_certificate_cache max=N [inactive=time] [valid=time]`; `off` is undefined. */
export interface CertificateCacheSetting {
  readonly max: number;
  /** Seconds an entry is used without checking its file; default 60. */
  readonly valid: number;
  /** Seconds an unused entry may stay; default 10. */
  readonly inactive: number;
}

/** `ngx_http_ssl_certificate_cache()` and its proxy twin: the arguments, with nginx's messages. */
export function parseCertificateCache(args: readonly string[], name: string, fail: (message: string) => never): CertificateCacheSetting | undefined {
  let max = 0;
  let inactive = 10;
  let valid = 60;
  let off = false;
  for (const arg of args) {
    const time = (text: string): number => {
      const ms = parseTime(text, { seconds: true });
      return ms === undefined ? fail(`invalid parameter "${arg}"`) : ms / 1000;
    };
    if (arg.startsWith('max=')) {
      const value = /^[0-9]+$/.test(arg.slice(4)) ? Number(arg.slice(4)) : 0;
      if (value <= 0) fail(`invalid parameter "${arg}"`);
      max = value;
    } else if (arg.startsWith('inactive=')) inactive = time(arg.slice(9));
    else if (arg.startsWith('valid=')) valid = time(arg.slice(6));
    else if (arg === 'off') off = true;
    else fail(`invalid parameter "${arg}"`);
  }
  if (off) return undefined;
  if (max === 0) fail(`"${name}" must have the "max" parameter`);
  return { max, valid, inactive };
}

interface Entry {
  value: unknown;
  created: number;
  accessed: number;
  ino: number;
  mtime: number;
}

/** What stat() says of a file, as nginx's ngx_file_uniq() and ngx_file_mtime() (seconds); zeros when it fails. */
async function identity(path: string): Promise<{ ino: number; mtime: number }> {
  try {
    const info = await stat(path);
    return { ino: info.ino, mtime: Math.floor(info.mtimeMs / 1000) };
  } catch {
    return { ino: 0, mtime: 0 };
  }
}

function seconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** One `*_certificate_cache` (a directive and the levels that inherit it share one). */
export class CertificateCache {
  readonly #setting: CertificateCacheSetting;
  /** Least recently used first: nginx's expire queue, read from its tail. */
  readonly #entries = new Map<string, Entry>();

  constructor(setting: CertificateCacheSetting) {
    this.#setting = setting;
  }

  /**
   * The object of `key` (kind and path); `create` loads it and says whether it may be kept.
   * `invalidate` reloads it whatever its age (nginx's retry after a key mismatch).
   */
  async fetch<T>(key: string, path: string, invalidate: boolean, create: () => Promise<{ value: T; keep: boolean }>): Promise<T> {
    const now = seconds();
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#entries.delete(key);
      let fresh = !invalidate && now - entry.created <= this.#setting.valid;
      if (!fresh) {
        const seen = await identity(path);
        fresh = !invalidate && seen.ino !== 0 && seen.ino === entry.ino && seen.mtime === entry.mtime;
        if (!fresh) {
          entry.ino = seen.ino;
          entry.mtime = seen.mtime;
          let made: { value: T; keep: boolean };
          try {
            made = await create();
          } catch (err) {
            // A file that went away or broke takes its entry with it (ngx_ssl_cache_connection_fetch()).
            this.#drop(key, entry);
            throw err;
          }
          if (!made.keep) {
            this.#drop(key, entry);
            return made.value;
          }
          entry.value = made.value;
        }
        entry.created = now;
      }
      entry.accessed = now;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      return entry.value as T;
    }
    const made = await create();
    if (!made.keep) return made.value;
    const seen = await identity(path);
    this.#expire(1, now);
    if (this.#entries.size >= this.#setting.max) this.#expire(0, now);
    // Another handshake may have loaded the same file meanwhile: the newer load wins, as one entry.
    this.#entries.delete(key);
    this.#entries.set(key, { value: made.value, created: now, accessed: now, ino: seen.ino, mtime: seen.mtime });
    return made.value;
  }

  #drop(key: string, entry: Entry): void {
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
  }

  /** `ngx_ssl_cache_expire()`: from `n`, entries go while fewer than three were looked at; past the first, only inactive ones. */
  #expire(n: number, now: number): void {
    while (n < 3) {
      const oldest = this.#entries.entries().next();
      if (oldest.done === true) return;
      const [key, entry] = oldest.value;
      if (n++ !== 0 && now - entry.accessed <= this.#setting.inactive) return;
      this.#entries.delete(key);
    }
  }
}

/** The caches of one generation, one per directive occurrence (levels that inherit it share its value, and so its cache). */
export class CertificateCaches {
  readonly #caches = new Map<CertificateCacheSetting, CertificateCache>();

  /** The cache of a setting; undefined for `off`. */
  for(setting: CertificateCacheSetting | undefined): CertificateCache | undefined {
    if (setting === undefined) return undefined;
    let cache = this.#caches.get(setting);
    if (cache === undefined) {
      cache = new CertificateCache(setting);
      this.#caches.set(setting, cache);
    }
    return cache;
  }
}

/** A certificate and key resolved for one connection: full paths. */
export interface CertificatePaths {
  readonly cert: string;
  readonly key: string;
}

/** A key file that needs a passphrase, which nginx's cache never keeps. */
function encrypted(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type: *4, *ENCRYPTED/m.test(pem);
}

async function readText(path: string, what: 'certificate' | 'certificate key'): Promise<string> {
  try {
    return await readFile(path, 'latin1');
  } catch (err) {
    throw openFailure(what, path, err);
  }
}

/**
 * `ngx_ssl_connection_certificate()`: the certificate, then the key, through the cache when
 * there is one; a pair that does not match (one cached, the other changed) is fetched once more
 * past the cache. Throws a CertificateLoadError in nginx's words.
 */
export async function loadConnectionCertificate(
  paths: CertificatePaths,
  cache: CertificateCache | undefined,
  passwords: readonly Buffer[] | undefined,
): Promise<{ cert: string; key: LoadedKey }> {
  const cert = async (): Promise<{ value: { text: string; leaf: X509Certificate }; keep: boolean }> => {
    const text = await readText(paths.cert, 'certificate');
    return { value: { text, leaf: parseLeaf(paths.cert, text) }, keep: true };
  };
  const key = async (): Promise<{ value: { key: LoadedKey; object: KeyObject }; keep: boolean }> => {
    const text = await readText(paths.key, 'certificate key');
    return { value: parseKey(text, paths.key, passwords), keep: !encrypted(text) };
  };
  for (let invalidate = false; ; invalidate = true) {
    const loadedCert = cache === undefined ? (await cert()).value : await cache.fetch(`cert ${paths.cert}`, paths.cert, invalidate, cert);
    const loadedKey = cache === undefined ? (await key()).value : await cache.fetch(`key ${paths.key}`, paths.key, invalidate, key);
    try {
      checkKeyOf(loadedCert.leaf, loadedKey.object, paths.key, 'SSL_use_PrivateKey');
      return { cert: loadedCert.text, key: loadedKey.key };
    } catch (err) {
      if (invalidate || cache === undefined) throw err;
    }
  }
}

/** Contexts kept per set of settings; the oldest goes first beyond this many. */
const CONTEXTS_MAX = 100;

/** Contexts of the same options and a certificate and key, kept by the hash of their text so that unchanged files reuse one. */
export class CertificateContexts {
  readonly #options: SecureContextOptions;
  readonly #contexts = new Map<string, SecureContext>();

  constructor(options: SecureContextOptions) {
    this.#options = options;
  }

  /** The context of `options` with this certificate and key. */
  get(cert: string, key: LoadedKey): SecureContext {
    const id = createHash('sha256').update(cert).update('\0').update(key.pem).digest('hex');
    let context = this.#contexts.get(id);
    if (context === undefined) {
      context = createSecureContext({ ...this.#options, cert, key: key.pem });
      if (this.#contexts.size >= CONTEXTS_MAX) {
        const oldest = this.#contexts.keys().next().value;
        if (oldest !== undefined) this.#contexts.delete(oldest);
      }
    } else this.#contexts.delete(id);
    this.#contexts.set(id, context);
    return context;
  }
}
