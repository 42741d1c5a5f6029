/**
 * The typed model of nginx-acme's configuration (`acme_issuer`, `acme_certificate`), as the
 * master's ACME manager reads it: {@link acmeSettingsOf}. The directive values it starts from are
 * parsed by acme-module.ts; the orders are completed here from `server_name` as nginx-acme's
 * `AcmeMainConfig::postconfiguration()` does, so that `-t` and the master see one result.
 */
import { ConfigError, formatLocation, type ConfigLocation } from '../core/errors.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { HitlessConfig } from '../conf/model.js';
import { firstName, identifiersOf, type AcmeIdentifier } from './acme-identifiers.js';
import type { AcmeResolverSettings } from './resolver-lookup.js';

/** The challenge types an issuer may use: nginx-acme's two, and hitless's dns-01 with an operator's command. */
export type AcmeChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01';

/** One `acme_issuer NAME { ... }` block as it was read (acme-module.ts), defaults applied. */
export interface AcmeIssuerDirective {
  readonly name: string;
  /** The directory URL (RFC 8555 section 7.1.1). */
  readonly uri: string;
  readonly contact: readonly string[];
  /** `account_key FILE`: absolute; undefined when the key is generated. */
  readonly accountKey: string | undefined;
  /** `account_key ALG[:SIZE]`, the key generated when there is no file: `ecdsa:256` by default. */
  readonly accountKeyType: string;
  /** `external_account_key KID FILE|data:KEY`: `file` is absolute ('' for `data:`), `key` the MAC key as base64url. */
  readonly externalAccountKey: { readonly kid: string; readonly file: string; readonly key: string } | undefined;
  /** `ssl_trusted_certificate`: a PEM file to verify the ACME server with; undefined: the system's CAs. */
  readonly trustedCertificate: string | undefined;
  /** `ssl_verify`, default on. */
  readonly verify: boolean;
  /** Absolute, default `<prefix>acme_<name>`; undefined for `state_path off` (nothing persisted). */
  readonly statePath: string | undefined;
  readonly acceptTermsOfService: boolean;
  readonly challenge: AcmeChallengeType;
  readonly dnsCommand: string | undefined;
  readonly commonNameInCsr: boolean;
  readonly preferredChain: string | undefined;
  readonly profile: { readonly name: string; readonly require: boolean } | undefined;
  readonly where: ConfigLocation;
}

/** One `acme_certificate ISSUER [identifier ...] [key=ALG[:SIZE]]` as it was read. */
export interface AcmeCertificateDirective {
  readonly issuer: string;
  /** The identifiers given as arguments, checked; empty: they come from `server_name`. */
  readonly identifiers: readonly AcmeIdentifier[];
  readonly keyType: 'ecdsa' | 'rsa';
  readonly keyBits: number;
  readonly where: ConfigLocation;
}

/** `acme_shared_zone zone=NAME:SIZE`. */
export interface AcmeSharedZone {
  readonly name: string;
  readonly size: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    acme_issuer: readonly AcmeIssuerDirective[];
    acme_shared_zone: AcmeSharedZone | undefined;
    acme_certificate: AcmeCertificateDirective | undefined;
  }
}

/**
 * An ACME issuer, as the master's ACME manager uses it: the directive as read, with `contact`
 * given `mailto:` where it had no scheme (as nginx-acme does), the external account key read,
 * and the http block's resolver.
 */
export interface AcmeIssuerConfig extends Omit<AcmeIssuerDirective, 'externalAccountKey' | 'where'> {
  /** RFC 8555 section 7.3.4: the key id, the file it was read from ('' for `data:`), and the MAC key. */
  readonly externalAccountKey: { readonly kid: string; readonly file: string; readonly hmacKey: Buffer } | undefined;
  /**
   * The http block's `resolver` and `resolver_timeout`, which nginx-acme resolves the ACME
   * server's name with (`Issuer::postconfiguration()`); undefined without one (hitless then uses
   * the system's resolver, where nginx-acme refuses the configuration).
   */
  readonly resolver: AcmeResolverSettings | undefined;
  /** `file:line` of the `acme_issuer` directive. */
  readonly where: string;
}

/** A certificate to obtain and keep renewed. */
export interface AcmeCertificateConfig {
  readonly issuer: string;
  /** The identifiers' values; the first is the store name (nginx-acme's first DNS name, else the first). */
  readonly names: readonly string[];
  /** The identifiers with their types (`dns`, `ip`), in the order of {@link names}. */
  readonly identifiers: readonly AcmeIdentifier[];
  readonly keyType: 'ecdsa' | 'rsa';
  readonly keyBits: number;
  /** `file:line` of the first `acme_certificate` that asks for it. */
  readonly where: string;
}

/** Everything ACME in one configuration. */
export interface AcmeSettings {
  readonly issuers: readonly AcmeIssuerConfig[];
  readonly certificates: readonly AcmeCertificateConfig[];
}

function whereText(location: ConfigLocation): string {
  return `${location.file}:${location.line}`;
}

/** The servers of the http block. */
function serversOf(http: ConfBlockView): ConfBlockView[] {
  return http.blocks.filter((block) => block.name === 'server');
}

/**
 * The identifiers of a server's `acme_certificate`: its arguments, else its `server_name`
 * (nginx-acme's `add_server_names()`: a regex is skipped with a [warn], an empty name skipped).
 * Throws nginx-acme's errors; `warn` gets its warnings.
 */
export function orderIdentifiers(server: ConfBlockView, order: AcmeCertificateDirective, warn: (reason: string) => void = () => undefined): AcmeIdentifier[] {
  let identifiers = [...order.identifiers];
  if (identifiers.length === 0) {
    for (const entry of server.get('server_name') as readonly { readonly kind: string; readonly name: string }[]) {
      if (entry.kind === 'regex') {
        warn(`"acme_certificate": unsupported regular expression in server_name: ~${entry.name}`);
        continue;
      }
      if (entry.name === '') continue;
      try {
        identifiers.push(...identifiersOf(entry.name));
      } catch (err) {
        throw new ConfigError(`"acme_certificate": ${err instanceof Error ? err.message : String(err)}`, order.where);
      }
    }
    if (identifiers.length === 0) throw new ConfigError('"acme_certificate": no identifiers found in "server_name"', order.where);
  }
  // The store name first (tls/certificate-store.ts keys certificates by server name).
  const first = firstName(identifiers);
  const at = identifiers.findIndex((id) => id.value === first);
  if (at > 0) identifiers = [identifiers[at] as AcmeIdentifier, ...identifiers.slice(0, at), ...identifiers.slice(at + 1)];
  return identifiers;
}

/**
 * The ACME issuers and certificates of a loaded configuration, the orders completed from
 * `server_name`; a server's `acme_certificate` naming an issuer that is not defined throws
 * nginx-acme's `issuer "NAME" is missing`, as does an order a store name cannot hold.
 * `warn` receives what `-t` prints at [warn] (acme-module.ts's check).
 */
export function acmeSettingsOf(config: HitlessConfig | ConfBlockView, warn: (reason: string) => void = () => undefined): AcmeSettings {
  const main = 'main' in config ? config.main : config;
  const http = main.blocks.find((block) => block.name === 'http');
  if (http === undefined) return { issuers: [], certificates: [] };
  const setting = http.get('resolver');
  const resolver = setting === undefined ? undefined : { servers: setting.servers, timeoutMs: http.get('resolver_timeout'), ipv4: setting.ipv4, ipv6: setting.ipv6 };
  const issuers = http.get('acme_issuer').map((issuer): AcmeIssuerConfig => ({
    name: issuer.name,
    uri: issuer.uri,
    contact: issuer.contact,
    accountKey: issuer.accountKey,
    accountKeyType: issuer.accountKeyType,
    externalAccountKey: issuer.externalAccountKey === undefined ? undefined : { kid: issuer.externalAccountKey.kid, file: issuer.externalAccountKey.file, hmacKey: Buffer.from(issuer.externalAccountKey.key, 'base64url') },
    trustedCertificate: issuer.trustedCertificate,
    verify: issuer.verify,
    statePath: issuer.statePath,
    acceptTermsOfService: issuer.acceptTermsOfService,
    challenge: issuer.challenge,
    dnsCommand: issuer.dnsCommand,
    commonNameInCsr: issuer.commonNameInCsr,
    preferredChain: issuer.preferredChain,
    profile: issuer.profile,
    resolver,
    where: whereText(issuer.where),
  }));
  const certificates: AcmeCertificateConfig[] = [];
  const byName = new Map<string, { config: AcmeCertificateConfig; where: ConfigLocation }>();
  for (const server of serversOf(http)) {
    const order = server.get('acme_certificate');
    if (order === undefined) continue;
    const identifiers = orderIdentifiers(server, order, warn);
    if (!issuers.some((issuer) => issuer.name === order.issuer)) throw new ConfigError(`issuer "${order.issuer}" is missing`, order.where);
    const names = identifiers.map((id) => id.value);
    const config: AcmeCertificateConfig = { issuer: order.issuer, names, identifiers, keyType: order.keyType, keyBits: order.keyBits, where: whereText(order.where) };
    const known = byName.get(names[0] as string);
    if (known !== undefined) {
      // nginx-acme keeps one order per issuer, identifiers and key; the same order twice is one.
      const same = known.config.issuer === config.issuer && known.config.keyType === config.keyType && known.config.keyBits === config.keyBits && known.config.names.join(' ') === names.join(' ');
      if (same) continue;
      // hitless's certificate store holds one certificate per name: two orders may not share it.
      throw new ConfigError(`"acme_certificate": another certificate for "${names[0] as string}" is requested ${formatLocation(known.where)}`, order.where);
    }
    byName.set(names[0] as string, { config, where: order.where });
    certificates.push(config);
  }
  return { issuers, certificates };
}

/**
 * The store name of a server's ACME certificate (the first name of its order), which
 * `ssl_certificate $acme_certificate` serves; undefined for a server without `acme_certificate`.
 */
export function acmeStoreNameOf(server: ConfBlockView): string | undefined {
  const order = server.get('acme_certificate');
  if (order === undefined) return undefined;
  try {
    return orderIdentifiers(server, order)[0]?.value;
  } catch {
    // -t refused this already; a server that cannot be ordered for has no certificate.
    return undefined;
  }
}
