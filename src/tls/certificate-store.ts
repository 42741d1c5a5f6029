/**
 * The certificate store: certificates held by the master by server name, each with its key, and
 * what the workers use before a server's own `ssl_certificate` when a handshake's SNI names them.
 *
 * A certificate enters the store only after the checks a deploy runs before it writes a byte
 * (deploy/preflight.ts): the PEM parses, the key matches the leaf, the chain links, the dates are
 * valid (unless forced) and the leaf covers the name. It is then persisted atomically under the
 * prefix, one file per name holding chain and key together (HAProxy's combined PEM), mode 0600 in a
 * 0700 directory: certificate and key can only ever change together, on disk as in memory.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { channels } from '../core/diagnostics.js';
import { HitlessError } from '../core/errors.js';
import { removeIfExists, writeFileAtomic, fsyncDirectory } from '../core/atomic-write.js';
import { CertificateInputError, readCertificateMaterial, splitPem, type CertificateMaterial } from './material.js';
import { coversWildcard, preflight } from './preflight.js';

/** A certificate as the store keeps it and sends it to workers. */
export interface StoredCertificate {
  /** The server name it answers: `example.com`, or `*.example.com` for one label below it. */
  readonly name: string;
  /** The leaf followed by its chain, PEM. */
  readonly cert: string;
  /** The leaf's private key, PEM; never logged. */
  readonly key: string;
}

/** What the admin API and `hitless certs list` show of a stored certificate: no key material. */
export interface CertificateSummary {
  readonly name: string;
  readonly subject: string;
  /** The DNS names and IP addresses of the leaf's subjectAltName. */
  readonly names: readonly string[];
  readonly issuer: string;
  /** SHA-256 of the leaf's DER, colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprint256: string;
  readonly serialNumber: string;
  /** ISO 8601. */
  readonly notBefore: string;
  /** ISO 8601. */
  readonly notAfter: string;
  /** Certificates after the leaf. */
  readonly chainLength: number;
  /** SHA-256 over leaf, chain and key bytes, hex: the identity `hitless deploy` compares. */
  readonly sha256: string;
}

/** One stored certificate as `GET /v1/certificates/{name}` shows it: the summary and the chain's PEM (no key). */
export interface CertificateDetail extends CertificateSummary {
  /** The leaf followed by its chain, PEM. */
  readonly pem: string;
}

/** A certificate the store will not take; the served one stays as it was. */
export class CertificateRefusedError extends HitlessError {
  constructor(message: string, options?: ErrorOptions) {
    super('HITLESS_ERR_CERT_REFUSED', message, options);
  }
}

/** No certificate of that name in the store. */
export class CertificateNotFoundError extends HitlessError {
  constructor(name: string) {
    super('HITLESS_ERR_CERT_NOT_FOUND', `No certificate named "${name}" in the store`);
  }
}

/** A store directory that cannot be read or written. */
export class CertificateStoreError extends HitlessError {
  constructor(message: string, options?: ErrorOptions) {
    super('HITLESS_ERR_CERT_STORE', message, options);
  }
}

/** A name the store accepts: a lowercase DNS name, optionally with one leading `*.` label. */
const NAME = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Checks a store name; throws {@link CertificateRefusedError} for anything else (a path, an IP, upper case). */
export function checkStoreName(name: string): void {
  if (isIP(name) !== 0) {
    throw new CertificateRefusedError(`Invalid certificate name "${name}": an IP address, which SNI never carries (RFC 6066 section 3)`);
  }
  if (name.length > 253 || !NAME.test(name)) {
    throw new CertificateRefusedError(`Invalid certificate name "${name}": expected a lowercase DNS name such as "example.com" or "*.example.com"`);
  }
}

/** What {@link checkCertificate} accepts beyond the defaults. */
export interface CheckOptions {
  /** Accept an expired or not-yet-valid certificate, or one that does not cover the name. Default false. */
  readonly force?: boolean | undefined;
  /** The time the dates are checked at. Default now. */
  readonly now?: Date | undefined;
}

/** The material of a certificate that passed every check, and what the checks warned about. */
export interface CheckedCertificate {
  readonly stored: StoredCertificate;
  readonly summary: CertificateSummary;
  readonly warnings: readonly string[];
}

/**
 * Runs the store's checks on a certificate (with its chain) and key for `name`; throws
 * {@link CertificateRefusedError} with the first failure. Messages never quote key bytes.
 */
export function checkCertificate(name: string, cert: string, key: string, options: CheckOptions = {}): CheckedCertificate {
  checkStoreName(name);
  let material: CertificateMaterial;
  let warnings: readonly string[];
  try {
    material = readCertificateMaterial({ certificate: Buffer.from(cert, 'latin1'), key: Buffer.from(key, 'latin1') });
    const force = options.force === true;
    const wildcard = name.startsWith('*.');
    const result = preflight(material, {
      names: wildcard || force ? [] : [name],
      now: options.now,
      ignoreDates: force,
    });
    warnings = result.warnings;
    if (wildcard && !coversWildcard(material.leaf, name)) {
      const problem = `The certificate does not cover "${name}": it covers ${material.leaf.subjectAltName ?? material.leaf.subject}`;
      if (!force) throw new CertificateRefusedError(problem);
      warnings = [...warnings, problem];
    } else if (force && !wildcard && material.leaf.checkHost(name) === undefined) {
      warnings = [...warnings, `The certificate does not cover "${name}"`];
    }
  } catch (err) {
    if (err instanceof CertificateInputError) throw new CertificateRefusedError(err.message, { cause: err });
    throw err;
  }
  const stored = { name, cert: material.fullchainPem.toString('latin1'), key };
  return { stored, summary: summarize(name, material), warnings };
}

/** The summary of a stored certificate. */
export function summaryOf(stored: StoredCertificate): CertificateSummary {
  return summarize(stored.name, readCertificateMaterial({ certificate: Buffer.from(stored.cert, 'latin1'), key: Buffer.from(stored.key, 'latin1') }));
}

function summarize(name: string, material: CertificateMaterial): CertificateSummary {
  const { leaf } = material;
  return {
    name,
    subject: oneLine(leaf.subject),
    names: namesOf(leaf),
    issuer: oneLine(leaf.issuer),
    fingerprint256: leaf.fingerprint256,
    serialNumber: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    chainLength: material.chain.length,
    sha256: material.sha256,
  };
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}

function namesOf(leaf: X509Certificate): string[] {
  return (leaf.subjectAltName ?? '').split(', ').flatMap((entry) => {
    const match = /^(?:DNS|IP Address):(.+)$/.exec(entry);
    return match === null ? [] : [match[1] as string];
  });
}

/** Orders names as `ngx_hash_find_combined()` searches them: exact first, then the wildcard one label up. */
export function lookupNames(serverName: string): [exact: string, wildcard: string | undefined] {
  const dot = serverName.indexOf('.');
  return [serverName, dot > 0 ? `*${serverName.slice(dot)}` : undefined];
}

/** The file a name is kept in. */
function fileOf(dir: string, name: string): string {
  return join(dir, `${name}.pem`);
}

/** The master's store: the certificates by name, and their files under the store directory. */
export class CertificateStore {
  readonly #dir: string;
  readonly #entries = new Map<string, StoredCertificate>();

  /** `dir` is where the store persists (`certificate_store`); it is created on the first put. */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The store directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Reads every `<name>.pem` of the directory. A file that does not parse or whose key does not match
   * is skipped and reported; dates are not checked, since a certificate was valid when it was put.
   * Returns the problems, one line each, for the error log.
   */
  load(): string[] {
    const problems: string[] = [];
    let files: string[];
    try {
      files = readdirSync(this.#dir).filter((file) => file.endsWith('.pem') && !file.startsWith('.'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return problems;
      throw new CertificateStoreError(`Cannot read the certificate store "${this.#dir}": ${(err as Error).message}`, { cause: err });
    }
    for (const file of files.sort()) {
      const name = file.slice(0, -'.pem'.length);
      try {
        const text = readFileSync(join(this.#dir, file), 'latin1');
        const blocks = splitPem(text);
        const cert = blocks.filter((block) => block.label === 'CERTIFICATE').map((block) => block.pem).join('');
        const key = blocks.find((block) => block.label.endsWith('PRIVATE KEY'))?.pem ?? '';
        const { stored } = checkCertificate(name, cert, key, { force: true });
        this.#entries.set(name, stored);
      } catch (err) {
        problems.push(`certificate store file "${join(this.#dir, file)}" skipped: ${(err as Error).message}`);
      }
    }
    return problems;
  }

  /** Every stored certificate, by name. */
  list(): StoredCertificate[] {
    return [...this.#entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The certificate stored for `name`, if any. */
  get(name: string): StoredCertificate | undefined {
    return this.#entries.get(name);
  }

  /** Persists a checked certificate atomically, then holds it; returns true when it replaced one. */
  async put(stored: StoredCertificate): Promise<boolean> {
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(fileOf(this.#dir, stored.name), Buffer.from(stored.cert + stored.key, 'latin1'), { mode: 0o600 });
    } catch (err) {
      throw new CertificateStoreError(`Cannot write the certificate store "${this.#dir}": ${(err as Error).message}`, { cause: err });
    }
    const replaced = this.#entries.has(stored.name);
    this.#entries.set(stored.name, stored);
    channels.certificatePut.publishLazy(() => ({ name: stored.name, replaced }));
    return replaced;
  }

  /** Removes a certificate from disk and memory; throws {@link CertificateNotFoundError} when there is none. */
  async delete(name: string): Promise<void> {
    if (!this.#entries.has(name)) throw new CertificateNotFoundError(name);
    try {
      await removeIfExists(fileOf(this.#dir, name));
      await fsyncDirectory(this.#dir);
    } catch (err) {
      throw new CertificateStoreError(`Cannot remove "${name}" from the certificate store "${this.#dir}": ${(err as Error).message}`, { cause: err });
    }
    this.#entries.delete(name);
  }
}
