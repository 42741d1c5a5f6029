/**
 * The TLS state one server holds while it runs, apart from any configuration: the certificates of
 * the store it serves, the master's session ticket key and the contexts that follow it, and where
 * `ssl_session_cache shared:` sessions live, and the ACME challenges it answers. A worker owns one and fills it from the master; a
 * program serving from code owns one and changes it itself. Contexts built while a configuration
 * is read know none of this: a {@link TlsTermination} joins them to the runtime it is given.
 */
import { AcmeChallenges } from './acme-challenges.js';
import { LocalSharedSessions, type SharedSessions } from './session-cache.js';
import { StoredCertificates } from './stored-certificates.js';
import { TicketKeys } from './ticket-keys.js';

/** The TLS state of one running server (one per worker process). */
export class TlsRuntime {
  /** The certificate store as this server sees it: a stored certificate for an SNI name comes first. */
  readonly certificates = new StoredCertificates();
  /** The master's session ticket key, on every context that follows it. */
  readonly ticketKeys = new TicketKeys();
  /** The ACME challenges the master presents (http-01 tokens, tls-alpn-01 certificates), answered by every http server. */
  readonly acmeChallenges = new AcmeChallenges();
  /** Where `shared:` session zones live. Default: in this process. */
  sharedSessions: SharedSessions = new LocalSharedSessions();
}
