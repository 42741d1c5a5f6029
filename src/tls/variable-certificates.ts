/**
 * `ssl_certificate` and `ssl_certificate_key` with variables (nginx 1.15.9+,
 * `ngx_http_ssl_certificate()`): the names are evaluated in each handshake, against a request that
 * has nothing but its connection (`ngx_http_alloc_request()`), so `$ssl_server_name`,
 * `$server_addr` and a `map` of them give values and request variables are empty.
 *
 * nginx then reads the files in every handshake. hitless keeps one {@link SecureContext} per
 * resolved set of files and checks them with one round of stat() per handshake (inode, size,
 * mtime); a change loads them again. A certificate and key that do not match after a change (one
 * file replaced before the other) leave the previous context serving: the problem is logged once
 * and the next handshake tries again. A file that is missing fails the handshake, as in nginx.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ErrorLog } from '../core/log.js';
import { compileTemplate, type VariableTable } from '../core/variables.js';
import { CertificateLoadError, openFailure, parseKeyOf, parseLeaf, storeKeyFile, type LoadedKey } from './certificate-files.js';
import type { TlsFile } from './ssl-module.js';
import { CertificateCache, loadConnectionCertificate, type CertificateCacheSetting, type CertificateCaches } from './certificate-cache.js';

/** Picks the context of one handshake: `servername` is the SNI name. Rejects when the files do not load. */
export type HandshakeCertificates = (socket: TLSSocket, servername: string) => Promise<SecureContext>;

/** One `ssl_certificate` and the `ssl_certificate_key` in the same position. */
export interface CertificatePair {
  readonly cert: TlsFile;
  readonly key: TlsFile;
}

/** A certificate's text and its key, loaded and checked. */
export interface LoadedCertificate {
  readonly cert: string;
  readonly key: LoadedKey;
}

/** Contexts kept per server and generation; the oldest goes first beyond this many names. */
const CONTEXTS_MAX = 1000;

/**
 * An SNI name that would walk out of a directory once in a path: nginx declines such a name as a
 * host (`ngx_http_validate_host()`) yet still gives it to `$ssl_server_name`; hitless refuses the
 * handshake instead of opening the file.
 */
function unsafeName(servername: string): boolean {
  return servername.includes('/') || servername.includes('\\') || servername.includes('..') || servername.includes('\0');
}

/** One (cert, key) set resolved for a handshake, with what stat() said of the files when it loaded. */
interface Loaded {
  readonly signature: string;
  readonly context: SecureContext;
}

/** The certificates of a server whose names have variables, as the configuration gives them. */
export class VariableCertificates {
  readonly #pairs: readonly CertificatePair[];
  readonly #passwords: readonly Buffer[] | undefined;
  readonly #build: (loaded: readonly LoadedCertificate[]) => SecureContext;
  readonly #cache: CertificateCacheSetting | undefined;

  /** `build` makes a context of the server's settings and the loaded certificates; `cache` is `ssl_certificate_cache`. */
  constructor(pairs: readonly CertificatePair[], passwords: readonly Buffer[] | undefined, build: (loaded: readonly LoadedCertificate[]) => SecureContext, cache?: CertificateCacheSetting) {
    this.#pairs = pairs;
    this.#passwords = passwords;
    this.#build = build;
    this.#cache = cache;
  }

  /**
   * Binds the names to a generation's variables and error log; each binding has its own contexts.
   * `requestOf` makes what the variables read from a handshake (http: a request with no head).
   */
  bind<R>(table: VariableTable<R>, requestOf: (socket: TLSSocket, servername: string) => R, log: ErrorLog, caches?: CertificateCaches): HandshakeCertificates {
    const pathOf = (file: TlsFile, key: boolean): ((request: R) => string) => {
      if (file.template === undefined) return () => file.path;
      const evaluate = compileTemplate(file.template, table);
      return (request) => {
        const name = evaluate(request);
        const stored = key ? storeKeyFile(name) : undefined;
        if (stored !== undefined) return stored;
        return isAbsolute(name) ? name : resolve(file.path, name);
      };
    };
    const names = this.#pairs.map((pair) => ({ cert: pathOf(pair.cert, false), key: pathOf(pair.key, true) }));
    const setting = this.#cache;
    const cache = setting === undefined ? undefined : (caches?.for(setting) ?? new CertificateCache(setting));
    const contexts = cache === undefined ? new FileContexts(this.#passwords, this.#build, log) : new CachedContexts(cache, this.#passwords, this.#build, log);
    return async (socket, servername) => {
      if (unsafeName(servername)) throw new Error(`Invalid server name "${servername}" for a certificate path`);
      const request = requestOf(socket, servername);
      const files = names.map((name) => ({ cert: name.cert(request), key: name.key(request) }));
      return contexts.get(files, ` while SSL handshaking, client: ${socket.remoteAddress ?? ''}, server: ${socket.localAddress ?? ''}:${socket.localPort ?? ''}`);
    };
  }
}

/**
 * `ssl_certificate_cache`: the files through nginx's cache (certificate-cache.ts), which may serve
 * a file that changed or went away until its entry is older than `valid`; one context per content.
 */
class CachedContexts {
  readonly #cache: CertificateCache;
  readonly #passwords: readonly Buffer[] | undefined;
  readonly #build: (loaded: readonly LoadedCertificate[]) => SecureContext;
  readonly #log: ErrorLog;
  readonly #contexts = new Map<string, SecureContext>();

  constructor(cache: CertificateCache, passwords: readonly Buffer[] | undefined, build: (loaded: readonly LoadedCertificate[]) => SecureContext, log: ErrorLog) {
    this.#cache = cache;
    this.#passwords = passwords;
    this.#build = build;
    this.#log = log;
  }

  async get(files: readonly { cert: string; key: string }[], where: string): Promise<SecureContext> {
    const loaded: LoadedCertificate[] = [];
    try {
      for (const pair of files) loaded.push(await loadConnectionCertificate(pair, this.#cache, this.#passwords));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#log.error(`${message}${where}`);
      throw err instanceof Error ? err : new Error(message);
    }
    const hash = createHash('sha256');
    for (const pair of loaded) hash.update(pair.cert).update('\0').update(pair.key.pem).update('\0');
    const id = hash.digest('hex');
    let context = this.#contexts.get(id);
    if (context === undefined) {
      context = this.#build(loaded);
      if (this.#contexts.size >= CONTEXTS_MAX) {
        const oldest = this.#contexts.keys().next().value;
        if (oldest !== undefined) this.#contexts.delete(oldest);
      }
    } else this.#contexts.delete(id);
    this.#contexts.set(id, context);
    return context;
  }
}

/** What identifies a file's content without reading it. */
async function fileSignature(path: string, what: 'certificate' | 'certificate key'): Promise<string> {
  try {
    const info = await stat(path);
    return `${info.ino}:${info.size}:${info.mtimeMs}`;
  } catch (err) {
    throw openFailure(what, path, err);
  }
}

async function readPem(path: string, what: 'certificate' | 'certificate key'): Promise<string> {
  try {
    return await readFile(path, 'latin1');
  } catch (err) {
    throw openFailure(what, path, err);
  }
}

/** The contexts of resolved file names, reloaded when stat() sees a file change. */
class FileContexts {
  readonly #passwords: readonly Buffer[] | undefined;
  readonly #build: (loaded: readonly LoadedCertificate[]) => SecureContext;
  readonly #log: ErrorLog;
  readonly #loaded = new Map<string, Loaded>();
  /** Loads in progress, so that handshakes that see the same change at once load it once. */
  readonly #loading = new Map<string, { signature: string; promise: Promise<SecureContext> }>();
  /** The signature whose failure was last logged while a previous context kept serving, by key. */
  readonly #reported = new Map<string, string>();

  constructor(passwords: readonly Buffer[] | undefined, build: (loaded: readonly LoadedCertificate[]) => SecureContext, log: ErrorLog) {
    this.#passwords = passwords;
    this.#build = build;
    this.#log = log;
  }

  /** The context of these files; `where` ends log lines. Rejects (after logging) when none can serve. */
  async get(files: readonly { cert: string; key: string }[], where: string): Promise<SecureContext> {
    const key = files.map((pair) => `${pair.cert}\0${pair.key}`).join('\0');
    let signature: string;
    try {
      // Settled in order, so that the first file that fails is the one nginx would name.
      const parts = await Promise.allSettled(files.flatMap((pair) => [fileSignature(pair.cert, 'certificate'), fileSignature(pair.key, 'certificate key')]));
      signature = parts
        .map((part) => {
          if (part.status === 'rejected') throw part.reason;
          return part.value;
        })
        .join('|');
    } catch (err) {
      // nginx logs each handshake whose files do not open, and fails it.
      this.#loaded.delete(key);
      this.#reported.delete(key);
      return this.#refuse(err, where);
    }
    const known = this.#loaded.get(key);
    if (known !== undefined && known.signature === signature) return known.context;
    let loading = this.#loading.get(key);
    if (loading === undefined || loading.signature !== signature) {
      const promise = this.#load(files);
      loading = { signature, promise };
      this.#loading.set(key, loading);
      void promise.then(
        () => this.#settled(key, promise),
        () => this.#settled(key, promise),
      );
    }
    try {
      const context = await loading.promise;
      this.#remember(key, { signature, context });
      this.#reported.delete(key);
      return context;
    } catch (err) {
      const previous = this.#loaded.get(key);
      // A pair caught halfway through a rotation: the previous files keep serving until both changed.
      if (previous !== undefined && err instanceof CertificateLoadError) {
        if (this.#reported.get(key) !== signature) {
          this.#reported.set(key, signature);
          this.#log.error(`${err.message}${where}, the previously loaded certificate is still used`);
        }
        return previous.context;
      }
      return this.#refuse(err, where);
    }
  }

  #settled(key: string, promise: Promise<SecureContext>): void {
    if (this.#loading.get(key)?.promise === promise) this.#loading.delete(key);
  }

  #remember(key: string, loaded: Loaded): void {
    this.#loaded.delete(key);
    this.#loaded.set(key, loaded);
    if (this.#loaded.size > CONTEXTS_MAX) {
      const oldest = this.#loaded.keys().next().value;
      if (oldest !== undefined) this.#loaded.delete(oldest);
    }
  }

  #refuse(err: unknown, where: string): never {
    const message = err instanceof CertificateLoadError ? err.message : `cannot load certificate: ${err instanceof Error ? err.message : String(err)}`;
    this.#log.error(`${message}${where}`);
    throw err instanceof Error ? err : new Error(message);
  }

  /** Reads and checks every pair in nginx's order (certificate, then key), then builds the context. */
  async #load(files: readonly { cert: string; key: string }[]): Promise<SecureContext> {
    const loaded: LoadedCertificate[] = [];
    for (const pair of files) {
      const cert = await readPem(pair.cert, 'certificate');
      const leaf = parseLeaf(pair.cert, cert);
      const keyPem = await readPem(pair.key, 'certificate key');
      loaded.push({ cert, key: parseKeyOf(leaf, pair.key, keyPem, this.#passwords, 'SSL_use_PrivateKey') });
    }
    try {
      return this.#build(loaded);
    } catch (err) {
      // The configuration built this server's settings once already; what fails here is the files.
      throw new CertificateLoadError(err instanceof Error ? err.message : String(err));
    }
  }
}
