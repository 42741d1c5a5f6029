/**
 * `ssl_certificate $acme_certificate; ssl_certificate_key $acme_certificate_key;` in a server with
 * `acme_certificate`: nginx-acme's variables give the issued chain and key from shared memory
 * (`data:...`), and nothing ("not found") before the first issuance, so that nginx's certificate
 * callback fails the handshake and logs `cannot load certificate` at [error]. hitless keeps the
 * issued certificate in its certificate store under the order's first name; each handshake that
 * reaches the server takes the store's current entry, and fails the same way while there is none.
 */
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ErrorLog } from '../core/log.js';
import type { ServerTls } from './contexts.js';
import type { StoredCertificates } from './stored-certificates.js';
import type { HandshakeCertificates } from './variable-certificates.js';

/**
 * The certificates of an ACME server's handshakes: the store entry `name` (undefined when the
 * server has no `acme_certificate`: nginx-acme's variables are then never found), with the
 * server's settings (`contextFor`).
 */
export function acmeCertificateSelect(name: string | undefined, certificates: StoredCertificates, contextFor: NonNullable<ServerTls['contextFor']>, log: ErrorLog): HandshakeCertificates {
  return (socket: TLSSocket) => {
    const stored = name === undefined ? undefined : certificates.lookup(name);
    if (stored === undefined) {
      const reason = name === undefined ? 'the server has no "acme_certificate"' : `no certificate for "${name}" has been issued yet`;
      const message = `cannot load certificate "$acme_certificate": ${reason}`;
      log.error(`${message} while SSL handshaking, client: ${socket.remoteAddress ?? ''}, server: ${socket.localAddress ?? ''}:${socket.localPort ?? ''}`);
      return Promise.reject(new Error(message));
    }
    try {
      return Promise.resolve(certificates.contextOf(stored, contextFor));
    } catch (err) {
      const message = `cannot use the certificate of "${stored.name}": ${err instanceof Error ? err.message : String(err)}`;
      log.error(`${message} while SSL handshaking, client: ${socket.remoteAddress ?? ''}, server: ${socket.localAddress ?? ''}:${socket.localPort ?? ''}`);
      return Promise.reject(new Error(message));
    }
  };
}

/**
 * The context of the store entry `name` now, or undefined: for a handshake without SNI, which
 * Node starts on one context and asks no callback about, where nginx's certificate callback
 * evaluates the variables all the same (they do not depend on the name).
 */
export function acmeStoredContext(name: string | undefined, certificates: StoredCertificates, contextFor: NonNullable<ServerTls['contextFor']>): () => SecureContext | undefined {
  return () => {
    const stored = name === undefined ? undefined : certificates.lookup(name);
    if (stored === undefined) return undefined;
    try {
      return certificates.contextOf(stored, contextFor);
    } catch {
      return undefined;
    }
  };
}
