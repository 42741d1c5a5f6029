/**
 * TLS session ticket keys, as `ngx_ssl_ticket_key_callback()` uses them: a list of keys, the first
 * encrypts new tickets, every one decrypts a ticket by the key name it carries, and a ticket
 * decrypted by another than the first is renewed (a new ticket under the first).
 *
 * Node's public API gives a context one key (`setTicketKeys()`); its native context also has
 * `enableTicketKeyCallback()`, which makes OpenSSL call the JS function `onticketkeycallback(name,
 * iv, encrypt)` of the context (src/crypto/crypto_context.cc `TicketKeyCallback`). It answers an
 * array: [0] OpenSSL's return code (1 done, 2 done and renew, 0 not found, -1 fatal), [1] the
 * HMAC-SHA256 secret (any length), [2] the AES-128-CBC key (16 bytes, always AES-128), and when
 * encrypting [3] the key name and [4] the IV (16 bytes each). Node finds the context by the
 * connection's current SSL_CTX, which after SNI is the chosen server's, so every context a
 * handshake can end on takes the callback.
 *
 * The keys come from three places, as in nginx: the `ssl_session_ticket_key` files; for a server
 * with `ssl_session_cache shared:`, its zone's keys, which the master replaces every
 * `ssl_session_timeout` (`ngx_ssl_rotate_ticket_keys()`); else the master's own key, replaced
 * hourly (nginx's OpenSSL key is one per SSL_CTX, kept until a reload). hitless's workers are
 * forked before the configuration is read, so the master makes the keys and sends them with the
 * configuration (process/ipc.ts `ServeMessage.ticketKeys`), and again on each rotation; a key
 * replaced stays second, so that the tickets it issued still resume, and are renewed.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import type { TlsFile } from './ssl-module.js';
import { zoneId, type SharedSessionZone } from './session-cache.js';

/** The size of a key the master makes: name, HMAC secret, AES-128 key, 16 bytes each. */
export const TICKET_KEY_BYTES = 48;

/** How often the master replaces its own key (not a zone's); a ticket lives `ssl_session_timeout` or until the key after next. */
export const TICKET_KEY_ROTATION_MS = 3_600_000;

/** One ticket key as the callback hands it to OpenSSL. */
export interface TicketKey {
  /** The 16 bytes a ticket names its key by. */
  readonly name: Buffer;
  /** The HMAC-SHA256 secret: 16 bytes (48-byte keys), 32 (80-byte files). */
  readonly hmac: Buffer;
  /** The AES-128-CBC key, 16 bytes. */
  readonly aes: Buffer;
}

/** A new random key, as the master makes one at start and on each rotation (name, HMAC, AES). */
export function createTicketKey(): Buffer {
  return randomBytes(TICKET_KEY_BYTES);
}

/** A key the master made ({@link createTicketKey}): name, HMAC secret, AES key. */
export function ticketKeyOf(key: Buffer): TicketKey {
  if (key.length !== TICKET_KEY_BYTES) throw new RangeError(`Ticket key must be ${TICKET_KEY_BYTES} bytes: got ${key.length}`);
  return { name: key.subarray(0, 16), hmac: key.subarray(16, 32), aes: key.subarray(32, 48) };
}

/**
 * `ssl_session_ticket_key file`: 48 or 80 bytes, as `ngx_ssl_session_ticket_keys()` reads them.
 * A 48-byte file is name, AES-128 key, HMAC secret, used as nginx uses it. An 80-byte file is
 * name, 32-byte HMAC secret, 32-byte AES-256 key; Node's callback always takes AES-128-CBC, so
 * the first 16 bytes of the AES key encrypt. Either way a session resumes on hitless only: the
 * session id contexts differ from nginx's (tls/contexts.ts).
 */
export function readTicketKeyFile(file: TlsFile): TicketKey {
  let data: Buffer;
  try {
    data = readFileSync(file.path);
  } catch (err) {
    throw new ConfigError(formatSyscallError('open', file.path, err), undefined, { cause: err });
  }
  if (data.length === 48) return { name: data.subarray(0, 16), aes: data.subarray(16, 32), hmac: data.subarray(32, 48) };
  if (data.length === 80) return { name: data.subarray(0, 16), hmac: data.subarray(16, 48), aes: data.subarray(48, 64) };
  throw new ConfigError(`"${file.path}" must be 48 or 80 bytes`, undefined);
}

/** The keys a context encrypts and decrypts with; replaced whole on a rotation, read by each handshake. */
export class TicketKeyRing {
  #keys: readonly TicketKey[];
  /** Called once, at the first ticket encrypted under these keys (a zone's rotation starts then). */
  #onFirstUse: (() => void) | undefined;

  /** `keys`: the first encrypts, every one decrypts; none: no ticket resumes or is issued until {@link use}. */
  constructor(keys: readonly TicketKey[] = [], onFirstUse?: () => void) {
    this.#keys = keys;
    this.#onFirstUse = onFirstUse;
  }

  /** The keys now, the one that encrypts first. */
  get keys(): readonly TicketKey[] {
    return this.#keys;
  }

  /** Replaces the keys (a rotation: the new key first, the one it replaces second). */
  use(keys: readonly TicketKey[]): void {
    this.#keys = keys;
  }

  /**
   * `ngx_ssl_ticket_key_callback()` in Node's array: encrypt under the first key with a random IV,
   * or find the ticket's key by name; renew when it is not the first (nginx also renews every
   * TLS 1.3 ticket, which OpenSSL 3 does anyway: a resumed TLS 1.3 session gets a new ticket).
   */
  answer(name: Buffer, encrypt: boolean): unknown[] {
    if (encrypt) {
      const key = this.#keys[0];
      // No key: 0 makes OpenSSL send no ticket (an empty one), and the handshake goes on.
      if (key === undefined) return [0, NOT_FOUND, NOT_FOUND, NOT_FOUND, randomBytes(16)];
      const first = this.#onFirstUse;
      this.#onFirstUse = undefined;
      first?.();
      return [1, key.hmac, key.aes, key.name, randomBytes(16)];
    }
    const index = this.#keys.findIndex((key) => key.name.equals(name));
    const key = this.#keys[index];
    // Node reads the HMAC and AES slots even for "not found"; OpenSSL then makes a full handshake.
    if (key === undefined) return [0, NOT_FOUND, NOT_FOUND];
    return [index === 0 ? 1 : 2, key.hmac, key.aes];
  }
}

const NOT_FOUND = Buffer.alloc(16);

/** `ssl_session_timeout`'s default. */
const DEFAULT_TIMEOUT_MS = 300_000;

/** Node's native context: @types/node types `SecureContext.context` as `any`. */
interface NativeTicketContext {
  enableTicketKeyCallback(): void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => unknown[];
}

/**
 * Makes `context` encrypt and decrypt tickets with `ring`, whatever its keys are at each handshake.
 * A context is bound once: a later ring for the same context (a server on two addresses) is the
 * same server's.
 */
export function useTicketKeyRing(context: SecureContext, ring: TicketKeyRing): void {
  const native = context.context as NativeTicketContext;
  if (native.onticketkeycallback !== undefined) return;
  native.onticketkeycallback = (name, _iv, encrypt) => ring.answer(name, encrypt);
  native.enableTicketKeyCallback();
}

/** The master's keys and the shared zones' as one process holds them; the rings contexts are bound to. */
export class TicketKeys {
  /**
   * The master's own keys, for servers without `ssl_session_ticket_key` or a shared zone. Until
   * the master's come (in a process without a master, for good), a random key of this process.
   */
  readonly master = new TicketKeyRing([ticketKeyOf(createTicketKey())]);
  readonly #zones = new Map<string, TicketKeyRing>();
  /** The shortest `ssl_session_timeout` of the servers of each zone this process serves. */
  readonly #timeouts = new Map<string, number>();
  /** Told the first time this process encrypts a ticket under a zone's keys, with the shortest `ssl_session_timeout` of its servers. */
  onZoneUse: ((zone: SharedSessionZone, timeoutMs: number) => void) | undefined;

  /** Installs the master's keys (at start, and on every rotation), base64 as they travel over IPC. */
  useMaster(keys: readonly string[]): void {
    this.master.use(keys.map((key) => ticketKeyOf(Buffer.from(key, 'base64'))));
  }

  /** Installs a zone's keys, base64. */
  useZone(zone: SharedSessionZone, keys: readonly string[]): void {
    this.zone(zone).use(keys.map((key) => ticketKeyOf(Buffer.from(key, 'base64'))));
  }

  /**
   * The ring of a shared zone; the first ticket encrypted under it tells
   * {@link onZoneUse} with the server's `ssl_session_timeout`, which the master rotates it by.
   */
  zone(zone: SharedSessionZone, timeoutMs?: number): TicketKeyRing {
    const id = zoneId(zone);
    const known = this.#timeouts.get(id);
    if (timeoutMs !== undefined && (known === undefined || timeoutMs < known)) this.#timeouts.set(id, timeoutMs);
    let ring = this.#zones.get(id);
    if (ring === undefined) {
      // Until the master's keys for the zone come (in a process without a master, for good, never rotated), a random key of this process.
      ring = new TicketKeyRing([ticketKeyOf(createTicketKey())], () => this.onZoneUse?.(zone, this.#timeouts.get(id) ?? DEFAULT_TIMEOUT_MS));
      this.#zones.set(id, ring);
    }
    return ring;
  }
}
