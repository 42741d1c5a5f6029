/**
 * TLS session ticket keys shared by every worker, so that a ticket one worker issued resumes on
 * another and after a reload. nginx's workers inherit the keys `ngx_ssl_session_ticket_keys()`
 * made before fork(); hitless's workers are forked before the configuration is read, so the master
 * makes the key and sends it with the configuration (process/ipc.ts `ServeMessage.ticketKey`), and
 * again on each rotation.
 *
 * Node gives a context one ticket key (`SecureContext.setTicketKeys()`, 48 bytes: 16 name, 16
 * HMAC-SHA256, 16 AES-128-CBC, src/crypto/crypto_context.cc `TicketKeyCallback`): there is no
 * previous key kept for decryption. A rotation replaces the key on every live context; a ticket
 * issued under the old key then fails to decrypt and the client gets a full handshake (and a new
 * ticket). See docs/process-model.md, "Session tickets".
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import type { TlsFile } from './ssl-module.js';

/** The size of a key in Node's layout: name, HMAC secret, AES key, 16 bytes each. */
export const TICKET_KEY_BYTES = 48;

/** How often the master replaces its key; a ticket lives `ssl_session_timeout` or until then. */
export const TICKET_KEY_ROTATION_MS = 3_600_000;

/** A new random key, as the master makes one at start and on each rotation. */
export function createTicketKey(): Buffer {
  return randomBytes(TICKET_KEY_BYTES);
}

/**
 * `ssl_session_ticket_key file`: 80 or 48 bytes, as `ngx_ssl_session_ticket_keys()` reads them,
 * turned into Node's layout. nginx's 48-byte file is name, AES, HMAC; its 80-byte file is name,
 * 32-byte HMAC, 32-byte AES (AES-256), of which Node's AES-128 ticket cipher takes the first 16
 * bytes of each: tickets are shared by every hitless reading the file, not with nginx.
 */
export function readTicketKeyFile(file: TlsFile): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file.path);
  } catch (err) {
    throw new ConfigError(formatSyscallError('open', file.path, err), undefined, { cause: err });
  }
  if (data.length === 48) return Buffer.concat([data.subarray(0, 16), data.subarray(32, 48), data.subarray(16, 32)]);
  if (data.length === 80) return Buffer.concat([data.subarray(0, 16), data.subarray(16, 32), data.subarray(48, 64)]);
  throw new ConfigError(`"${file.path}" must be 80 or 48 bytes`, undefined);
}

/** Native `SSL_CTX` wrapper: @types/node types `SecureContext.context` as `any`. */
function setKey(context: SecureContext, key: Buffer): void {
  (context.context as { setTicketKeys(keys: Buffer): void }).setTicketKeys(key);
}

/** The master's ticket key as one process holds it, and the contexts that follow it. */
export class TicketKeys {
  /** The current key from the master; undefined in a process without a master. */
  #key: Buffer | undefined;
  /** The contexts that follow the master's key (not those with an `ssl_session_ticket_key`). */
  readonly #following = new Set<WeakRef<SecureContext>>();
  readonly #known = new WeakSet<SecureContext>();
  readonly #forget = new FinalizationRegistry<WeakRef<SecureContext>>((ref) => this.#following.delete(ref));

  /** Installs the master's key (at start, and on every rotation) on every context that follows it. */
  use(key: Buffer): void {
    if (key.length !== TICKET_KEY_BYTES) throw new RangeError(`Ticket key must be ${TICKET_KEY_BYTES} bytes: got ${key.length}`);
    this.#key = key;
    for (const ref of this.#following) {
      const context = ref.deref();
      if (context === undefined) this.#following.delete(ref);
      else setKey(context, key);
    }
  }

  /** Makes `context` use the master's key now and after each rotation; once per context, a no-op without a master. */
  follow(context: SecureContext): void {
    if (this.#known.has(context)) return;
    this.#known.add(context);
    const ref = new WeakRef(context);
    this.#following.add(ref);
    this.#forget.register(context, ref);
    if (this.#key !== undefined) setKey(context, this.#key);
  }
}
