/**
 * The types the ACME manager is driven with: the protocol it is given (src/acme/client.ts has these
 * shapes), the settings it runs (src/acme/acme-config.ts has these shapes), and what it shows.
 */
import type { KeyObject } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import type { AcmeCertificateConfig, AcmeIssuerConfig } from './acme-config.js';
import type { AcmeResolverSettings } from './resolver-lookup.js';

/** A challenge the CA is about to validate (src/acme/client.ts's PendingChallenge). */
export interface AcmePendingChallenge {
  readonly type: 'http-01' | 'tls-alpn-01' | 'dns-01';
  readonly identifier: string;
  readonly token: string;
  readonly keyAuthorization: string;
  readonly dnsValue: string;
}

/** What an order is given (src/acme/client.ts's IssueOptions). */
export interface AcmeIssueOptions {
  readonly names: readonly string[];
  readonly certificateKey: KeyObject;
  readonly challenge: AcmePendingChallenge['type'];
  readonly replaces?: string;
  present(challenge: AcmePendingChallenge): Promise<void>;
  cleanup(challenge: AcmePendingChallenge): Promise<void>;
  readonly signal?: AbortSignal;
}

/** The CA's suggested renewal window (RFC 9773). */
export interface AcmeRenewalWindow {
  readonly start: Date;
  readonly end: Date;
  readonly retryAfterMs?: number | undefined;
  readonly explanationUrl?: string | undefined;
}

/** The ACME client as the manager uses it: src/acme/client.ts's AcmeClient has this shape. */
export interface AcmeProtocolClient {
  account(options: { contact: readonly string[]; termsOfServiceAgreed: boolean; externalAccountBinding?: { kid: string; hmacKey: Buffer } }): Promise<{ url: string }>;
  issue(options: AcmeIssueOptions): Promise<{ certificate: string; orderUrl: string }>;
  renewalInfo(certificatePem: string): Promise<AcmeRenewalWindow | undefined>;
}

/** How a client is made for an issuer (src/acme/client.ts's AcmeClientOptions). */
export interface AcmeClientSettings {
  readonly directoryUrl: string;
  readonly accountKey: KeyObject;
  readonly ca?: string;
  readonly verify?: boolean;
  /** Resolves the directory's host (the http block's `resolver`); default the system's resolver. */
  readonly lookup?: LookupFunction;
}

/** The protocol side, injected. */
export interface AcmeDependencies {
  createClient(settings: AcmeClientSettings): AcmeProtocolClient;
  /** RFC 9773's certificate identifier, for `replaces`. */
  certificateIdentifier(certificatePem: string): string;
  /** The RFC 8737 challenge certificate for tls-alpn-01. */
  tlsAlpnCertificate(name: string, keyAuthorization: string): Promise<{ cert: string; key: string }>;
}

/**
 * An issuer as the manager needs it: acme-config.ts's AcmeIssuerConfig, of which the manager
 * reads these members; `hmacKey` may be absent (then `file` is read: base64url, or nginx-acme's
 * `data:KEY`), and `statePath` undefined or empty is `state_path off` (nothing persisted).
 */
export type AcmeIssuerSettings = Pick<AcmeIssuerConfig, 'name' | 'uri' | 'contact' | 'accountKey' | 'accountKeyType' | 'trustedCertificate' | 'verify' | 'statePath' | 'acceptTermsOfService' | 'challenge' | 'dnsCommand' | 'where'> & {
  readonly externalAccountKey: { readonly kid: string; readonly file: string; readonly hmacKey?: Buffer } | undefined;
  /** The http block's `resolver` and `resolver_timeout`; undefined: the system's resolver. */
  readonly resolver?: AcmeResolverSettings | undefined;
};

/** An `acme_certificate`: acme-config.ts's AcmeCertificateConfig without its typed identifiers (the first name is the store name). */
export type AcmeCertificateSettings = Omit<AcmeCertificateConfig, 'identifiers'>;

/** Everything the manager runs: acme-config.ts's AcmeSettings. */
export interface AcmeManagerSettings {
  readonly issuers: readonly AcmeIssuerSettings[];
  readonly certificates: readonly AcmeCertificateSettings[];
}

/** What the workers answer challenges from: the body of the `acme-challenges` message. */
export interface AcmeChallengeTables {
  /** token -> key authorization (http-01). */
  readonly http: Readonly<Record<string, string>>;
  /** server name -> challenge certificate (tls-alpn-01). */
  readonly tlsAlpn: Readonly<Record<string, { readonly cert: string; readonly key: string }>>;
}

/** One ACME name's state, as `hitless certs list` and `GET /v1/acme` show it (null: none). */
export interface AcmeNameState {
  /** The store name (the first identifier). */
  readonly name: string;
  readonly names: readonly string[];
  readonly issuer: string;
  /** ISO 8601, of the certificate held now; null before the first issuance. */
  readonly notAfter: string | null;
  /** ISO 8601: the next order (or renewal information check); null while an order runs. */
  readonly nextRenewal: string | null;
  /** Whether the time comes from the CA's renewal information (RFC 9773). */
  readonly renewalInfo: boolean;
  readonly ordering: boolean;
  /** Failures in a row since the last success. */
  readonly failures: number;
  readonly lastError: { readonly at: string; readonly type: string | null; readonly detail: string } | null;
}

/** The log lines the manager writes. */
export interface AcmeLog {
  alert(message: string): void;
  error(message: string): void;
  warn(message: string): void;
  notice(message: string): void;
  info(message: string): void;
}

/** Time, injectable for tests. Default: Date.now and unref'd setTimeout. */
export interface AcmeClock {
  now(): number;
  /** Calls `fn` after `ms`; returns a canceller. The real one never keeps the process alive. */
  schedule(fn: () => void, ms: number): () => void;
}

/** What {@link AcmeManager} is built with. */
export interface AcmeManagerOptions {
  readonly dependencies: AcmeDependencies;
  /** The current error log (it changes on reload). */
  readonly log: () => AcmeLog;
  /** Puts an issued certificate into the store with the admin API's checks (MasterCertificates.put). */
  install(name: string, cert: string, key: string): Promise<void>;
  /** The chain the store holds for `name` now, if any. */
  served(name: string): string | undefined;
  /**
   * Sends the whole challenge tables to every worker; a promise settles once every worker answers
   * from them (waited for at most {@link PUBLISH_TIMEOUT_MS} before the CA is told to validate).
   */
  publishChallenges(tables: AcmeChallengeTables): Promise<void> | void;
  /** Default: the real clock. */
  readonly clock?: AcmeClock;
  /** Default: Math.random. */
  readonly random?: () => number;
}
