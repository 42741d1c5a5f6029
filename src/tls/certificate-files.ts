/**
 * Certificate and key files as nginx loads them (`ngx_ssl_load_certificate()`,
 * `ngx_ssl_load_certificate_key()`, `ngx_ssl_read_password_file()`), with nginx's messages. The
 * same checks serve the configuration (`-t`, once per generation, synchronous) and a handshake
 * whose `ssl_certificate` has variables (asynchronous reads). No message ever holds key bytes:
 * only paths and OpenSSL's error texts.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { HitlessError } from '../core/errors.js';
import { errnoMessage, errnoText } from '../core/errno.js';

/** A private key that loaded: its PEM, decrypted when `ssl_password_file` opened it (Node takes passphrases as UTF-8 only). */
export interface LoadedKey {
  readonly pem: string;
}

/** A certificate or key file that cannot be read or used (`HITLESS_ERR_TLS_CERTIFICATE`); the message is nginx's. */
export class CertificateLoadError extends HitlessError {
  constructor(message: string) {
    super('HITLESS_ERR_TLS_CERTIFICATE', message);
  }
}

/** OpenSSL 3's text for a file fopen() cannot open, as nginx prints it. */
export function openFailure(what: 'certificate' | 'certificate key' | 'CRL', path: string, err: unknown): CertificateLoadError {
  // OpenSSL's system library text is strerror()'s, without the number (EACCES, EISDIR, ELOOP, ...).
  const reason = errnoMessage((err as NodeJS.ErrnoException).code ?? '') ?? (err instanceof Error ? err.message : String(err));
  return new CertificateLoadError(
    `cannot load ${what} "${path}": BIO_new_file() failed (SSL: error:80000002:system library::${reason}:calling fopen(${path}, r) error:10000080:BIO routines::no such file)`,
  );
}

/**
 * The CRLs of a PEM file's text, one string each: OpenSSL's X509_load_cert_crl_file() (nginx's
 * ngx_ssl_crl()) takes every one, Node's `crl` option only the first of a string.
 */
export function crlBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN X509 CRL-----[^-]*-----END X509 CRL-----/g) ?? [pem];
}

/** Reads a PEM file now; throws {@link CertificateLoadError}. */
/**
 * The file of a `store:file:...` key (nginx 1.29.0 loads `store:` keys with OSSL_STORE_open()):
 * Node has no OSSL_STORE, so hitless reads the `file:` scheme's file itself, relative to the
 * working directory as OpenSSL's file loader is; undefined for the names of other schemes.
 */
export function storeKeyFile(name: string): string | undefined {
  if (!name.startsWith('store:file:')) return undefined;
  return resolve(name.slice('store:file:'.length));
}

export function readPemSync(path: string, what: 'certificate' | 'certificate key' | 'CRL'): string {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    throw openFailure(what, path, err);
  }
}

/** OpenSSL's own text when Node passes one on (`error:1C800064:Provider routines::bad decrypt`), never anything else of the error. */
function opensslReason(err: unknown, fallback: string): string {
  const message = err instanceof Error ? err.message : '';
  return /^error:[0-9A-F]{8}:[\w ]+:[\w ]*:[\w ,]+$/.test(message) ? message : fallback;
}

/** What OpenSSL 3 says when nginx's password callback has no passphrase for an encrypted key. */
const NO_PASSPHRASE = 'error:07880109:common libcrypto routines::interrupted or cancelled error:04800068:PEM routines::bad password read';

/**
 * `ngx_ssl_load_certificate_key()`: the key, tried with each passphrase in order; without
 * `ssl_password_file`, an encrypted key fails as nginx's callback answers no passphrase.
 */
export function parseKey(pem: string, path: string, passwords: readonly Buffer[] | undefined): { key: LoadedKey; object: KeyObject } {
  const fail = (reason: string): never => {
    throw new CertificateLoadError(`cannot load certificate key "${path}": PEM_read_bio_PrivateKey() failed (SSL: ${reason})`);
  };
  if (passwords === undefined) {
    try {
      return { key: { pem }, object: createPrivateKey(pem) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED' || code === 'ERR_MISSING_PASSPHRASE') return fail(NO_PASSPHRASE);
      return fail('error:1E08010C:DECODER routines::unsupported:No supported data to decode. Input type: PEM');
    }
  }
  let last: unknown;
  for (const passphrase of passwords) {
    try {
      const object = createPrivateKey({ key: pem, format: 'pem', passphrase });
      return { key: { pem: object.export({ type: 'pkcs8', format: 'pem' }) as string }, object };
    } catch (err) {
      last = err;
    }
  }
  return fail(opensslReason(last, 'error:1C800064:Provider routines::bad decrypt'));
}

/** `ngx_ssl_load_certificate()`: the leaf of a PEM certificate file's text. Throws {@link CertificateLoadError}. */
export function parseLeaf(path: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new CertificateLoadError(`cannot load certificate "${path}": PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE)`);
  }
}

/**
 * The key of `leaf`, from a key file's text; `use` names the OpenSSL call of the mismatch message:
 * `SSL_CTX_use_PrivateKey` at configuration time, `SSL_use_PrivateKey` in a handshake
 * (`ngx_ssl_connection_certificate()`). Throws {@link CertificateLoadError}.
 */
export function parseKeyOf(
  leaf: X509Certificate,
  path: string,
  pem: string,
  passwords: readonly Buffer[] | undefined,
  use: 'SSL_CTX_use_PrivateKey' | 'SSL_use_PrivateKey',
): LoadedKey {
  const loaded = parseKey(pem, path, passwords);
  checkKeyOf(leaf, loaded.object, path, use);
  return loaded.key;
}

/** Throws nginx's mismatch error when `key` is not the key of `leaf`; `use` as for {@link parseKeyOf}. */
export function checkKeyOf(leaf: X509Certificate, key: KeyObject, path: string, use: 'SSL_CTX_use_PrivateKey' | 'SSL_use_PrivateKey'): void {
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateLoadError(`${use}("${path}") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)`);
  }
}

/** `ngx_ssl_read_password_file()` reads at most this much of a line. */
const PASSWORD_LINE_MAX = 4096;

/**
 * `ssl_password_file`: one passphrase a line (LF, an optional CR before it), empty lines skipped; a
 * file without any gives one empty passphrase, as nginx's does. Throws with nginx's reason.
 */
export function readPasswordFile(path: string, read: (path: string) => Buffer = readFileSync): Buffer[] {
  let data: Buffer;
  try {
    data = read(path);
  } catch (err) {
    throw new CertificateLoadError(`open() "${path}" failed (${errnoText(err)})`);
  }
  const passwords: Buffer[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0x0a, start);
    if (end === -1) end = data.length;
    if (end - start >= PASSWORD_LINE_MAX) throw new CertificateLoadError(`too long line in "${path}"`);
    let line = data.subarray(start, end);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > 0) passwords.push(Buffer.from(line));
    start = end + 1;
  }
  if (passwords.length === 0) passwords.push(Buffer.alloc(0));
  return passwords;
}
