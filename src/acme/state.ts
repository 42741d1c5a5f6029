/**
 * What the ACME manager keeps on disk, under an issuer's `state_path` (nginx-acme's layout, plus a
 * status file per certificate): the directory is 0700 and every file 0600, since it holds private
 * keys, and every write is atomic (core/atomic-write.ts), so a crash leaves the old file or the new.
 *
 *   account.key        the account's private key (PEM), when generated rather than configured
 *   account.url        the account's URL at the CA
 *   NAME.key           the certificate's private key (PEM)
 *   NAME.crt           the certificate and its chain (PEM, leaf first)
 *   NAME.json          { failures, lastError, nextAttempt }: why and when it is tried again
 *
 * NAME is the certificate's first identifier, a wildcard's `*` written as `_`.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.js';

/** Mode of the state directory. */
export const STATE_DIR_MODE = 0o700;
/** Mode of every file in it. */
export const STATE_FILE_MODE = 0o600;

/** The last failure of a certificate's order, as logged and shown by `hitless certs list`. */
export interface AcmeFailure {
  /** ISO 8601. */
  readonly at: string;
  /** The ACME problem type (`urn:ietf:params:acme:error:...`), when the CA sent a problem document. */
  readonly type: string | undefined;
  readonly detail: string;
}

/** What NAME.json holds. */
export interface AcmeStatusFile {
  /** Failures in a row since the last success. */
  readonly failures: number;
  readonly lastError: AcmeFailure | undefined;
  /** ISO 8601: when the next attempt was planned after the last failure. */
  readonly nextAttempt: string | undefined;
}

/** A stored certificate and its key. */
export interface AcmeStoredPair {
  readonly cert: string;
  readonly key: string;
}

/** One issuer's state directory. */
export class AcmeStateDir {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** Creates the directory (0700), or narrows an existing one to 0700. */
  async prepare(): Promise<void> {
    await mkdir(this.path, { recursive: true, mode: STATE_DIR_MODE });
    await chmod(this.path, STATE_DIR_MODE);
  }

  /** The generated account key, if one was stored. */
  readAccountKey(): Promise<string | undefined> {
    return this.#read('account.key');
  }

  writeAccountKey(pem: string): Promise<void> {
    return this.#write('account.key', pem);
  }

  async readAccountUrl(): Promise<string | undefined> {
    return (await this.#read('account.url'))?.trim() || undefined;
  }

  writeAccountUrl(url: string): Promise<void> {
    return this.#write('account.url', `${url}\n`);
  }

  /** The stored certificate of `name` and its key; undefined unless both are there. */
  async readCertificate(name: string): Promise<AcmeStoredPair | undefined> {
    const [cert, key] = await Promise.all([this.#read(`${fileName(name)}.crt`), this.#read(`${fileName(name)}.key`)]);
    return cert === undefined || key === undefined ? undefined : { cert, key };
  }

  /** Stores a certificate and its key: the key first, so a certificate is never there without its key. */
  async writeCertificate(name: string, pair: AcmeStoredPair): Promise<void> {
    await this.#write(`${fileName(name)}.key`, pair.key);
    await this.#write(`${fileName(name)}.crt`, pair.cert);
  }

  /** The status file of `name`; a missing or unreadable one reads as no failure. */
  async readStatus(name: string): Promise<AcmeStatusFile> {
    const text = await this.#read(`${fileName(name)}.json`);
    const none: AcmeStatusFile = { failures: 0, lastError: undefined, nextAttempt: undefined };
    if (text === undefined) return none;
    try {
      const parsed = JSON.parse(text) as Partial<{ failures: unknown; lastError: Partial<Record<keyof AcmeFailure, unknown>> | null; nextAttempt: unknown }>;
      const error = parsed.lastError;
      return {
        failures: typeof parsed.failures === 'number' && parsed.failures >= 0 ? Math.floor(parsed.failures) : 0,
        lastError:
          error !== null && typeof error === 'object' && typeof error.at === 'string' && typeof error.detail === 'string'
            ? { at: error.at, type: typeof error.type === 'string' ? error.type : undefined, detail: error.detail }
            : undefined,
        nextAttempt: typeof parsed.nextAttempt === 'string' && !Number.isNaN(Date.parse(parsed.nextAttempt)) ? parsed.nextAttempt : undefined,
      };
    } catch {
      return none;
    }
  }

  writeStatus(name: string, status: AcmeStatusFile): Promise<void> {
    const json = { failures: status.failures, lastError: status.lastError ?? null, nextAttempt: status.nextAttempt ?? null };
    return this.#write(`${fileName(name)}.json`, `${JSON.stringify(json, null, 2)}\n`);
  }

  async #read(file: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.path, file), 'utf8');
    } catch (err) {
      if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
      throw err;
    }
  }

  #write(file: string, data: string): Promise<void> {
    return writeFileAtomic(join(this.path, file), Buffer.from(data), { mode: STATE_FILE_MODE });
  }
}

/** The file name stem of a certificate name: store names are lowercase DNS names, `*.` aside. */
export function fileName(name: string): string {
  return name.replace(/\*/g, '_');
}
