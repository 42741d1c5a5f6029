/**
 * A worker's copy of the master's certificate store (tls/certificate-store.ts), and the TLS
 * contexts built from it. The master sends the whole store with the configuration and each change
 * as it happens; a handshake whose SNI names a stored certificate gets a context built once from
 * that certificate and the ssl_* settings of the server the name selects.
 *
 * An entry is replaced as one object holding certificate and key, and contexts are cached per
 * entry object: a handshake sees the old pair or the new one, never a mix.
 */
import type { SecureContext } from 'node:tls';
import { lookupNames, type StoredCertificate } from './certificate-store.js';
import type { ServerTls } from './contexts.js';

/** The certificates of the store one process serves (a worker's copy, or a program's own). */
export class StoredCertificates {
  readonly #entries = new Map<string, StoredCertificate>();
  readonly #contexts = new WeakMap<StoredCertificate, WeakMap<NonNullable<ServerTls['contextFor']>, SecureContext>>();

  /** Replaces the whole store (a worker's start). */
  replaceAll(list: readonly StoredCertificate[]): void {
    this.#entries.clear();
    for (const stored of list) this.#entries.set(stored.name, stored);
  }

  /** Adds or replaces one certificate; the next handshake for its name uses it. */
  put(stored: StoredCertificate): void {
    this.#entries.set(stored.name, stored);
  }

  /** Removes one certificate; handshakes for its name fall back to the server's own. */
  delete(name: string): void {
    this.#entries.delete(name);
  }

  /** The stored certificate for an SNI name: the exact name, else the wildcard one label up. */
  lookup(serverName: string): StoredCertificate | undefined {
    if (this.#entries.size === 0 || serverName === '') return undefined;
    const [exact, wildcard] = lookupNames(serverName);
    return this.#entries.get(exact) ?? (wildcard === undefined ? undefined : this.#entries.get(wildcard));
  }

  /**
   * The context for a stored certificate with a server's settings, built on first use; throws when
   * the certificate does not fit them (the caller logs it and serves the server's own).
   */
  contextOf(stored: StoredCertificate, contextFor: NonNullable<ServerTls['contextFor']>): SecureContext {
    let byServer = this.#contexts.get(stored);
    if (byServer === undefined) {
      byServer = new WeakMap();
      this.#contexts.set(stored, byServer);
    }
    let context = byServer.get(contextFor);
    if (context === undefined) {
      context = contextFor(stored.cert, stored.key);
      byServer.set(contextFor, context);
    }
    return context;
  }
}
