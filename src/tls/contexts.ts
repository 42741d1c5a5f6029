/**
 * The TLS side of a virtual server: its certificates loaded (`ngx_ssl_certificates()`) and one
 * {@link SecureContext} built from them and the server's ssl_* settings, once per configuration
 * and cached on the server block, so that `-t`, the check and the worker share one load.
 */
import { constants, createHash, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import type { ConfBlockView, DirectiveValues } from '../conf/registry.js';
import { CertificateLoadError, crlBlocks, parseKeyOf, parseLeaf, readPemSync, type LoadedKey } from './certificate-files.js';
import { certificatesOf, type ClientVerifySettings, type VerifyClientMode } from './client-verify.js';
import { SEND_FRAGMENT_MAX, SEND_FRAGMENT_MIN, type TlsFile, type TlsProtocolName } from './ssl-module.js';
import { buildStaples, type CertificateStaple, type StaplingSettings } from './ocsp-stapling.js';
import { SessionCache, type SharedSessionZone } from './session-cache.js';
import { readTicketKeyFile, TicketKeyRing } from './ticket-keys.js';
import { readDhParams } from './dh-params.js';
import { applyConfCommands, type ConfCommandResult } from './ssl-conf-command.js';
import { VariableCertificates, type HandshakeCertificates } from './variable-certificates.js';
import { serverGroups, type GroupSettings } from './client-hello.js';

/** What a handshake that reaches a server gets. */
export interface ServerTls {
  /** Undefined when the server has no `ssl_certificate`, or names it with variables. */
  readonly context: SecureContext | undefined;
  /**
   * With `ssl_certificate` with variables, the context of the server's settings without a
   * certificate: nginx's SSL_CTX, on which a handshake starts (its tickets, its session id context).
   */
  readonly settingsContext?: SecureContext;
  /** `ssl_reject_handshake on`. */
  readonly rejectHandshake: boolean;
  /** `ssl_verify_client` and `ssl_verify_depth`. */
  readonly verify: ClientVerifySettings;
  /** `ssl_certificate` with variables: what is loaded in each handshake; undefined otherwise. */
  readonly variable: VariableCertificates | undefined;
  /** The variable certificates bound to a generation's variables and error log (see {@link VariableCertificates.bind}); or the ACME certificate's lookup. */
  readonly select?: HandshakeCertificates;
  /** `ssl_certificate $acme_certificate`: the certificate comes from the store, by the server's ACME name (acme-certificates.ts). */
  readonly acme?: true;
  /** An ACME server's certificate now (undefined before it is issued), for a handshake without SNI. */
  readonly storedContext?: () => SecureContext | undefined;
  /**
   * Builds a context with the server's settings and another certificate and key (one of the store);
   * throws a ConfigError when they do not fit the settings. Undefined when the settings are incomplete.
   */
  readonly contextFor: ((cert: string | string[], key: string | string[]) => SecureContext) | undefined;
  /** `ssl_session_cache` and `ssl_session_timeout`; undefined for `off` and `none` (session-cache.ts). */
  readonly sessionCache: SessionCache | undefined;
  /** Where its contexts take their session ticket keys from (tls/ticket-keys.ts). */
  readonly ticketKeys: TicketKeySource;
  /** `ssl_stapling on`: the OCSP staple of each of its certificates that has one (ocsp-stapling.ts). */
  readonly staples: readonly CertificateStaple[];
  /** How many certificates `context` holds, one per key type; 0 without one. */
  readonly certificates: number;
  /** `ssl_buffer_size`, as a record size Node sends (512..16384). */
  readonly maxSendFragment: number;
  /** `ssl_protocols` as the context has them (after ssl_conf_command), comparable between servers. */
  readonly protocols: string;
  /** `ssl_ecdh_curve` and `ssl_prefer_server_ciphers`, for `$ssl_curve`. */
  readonly groups: GroupSettings;
  /** The [warn]s nginx logs while it builds the server's TLS (`ngx_ssl_stapling()`), without a location as nginx's. */
  readonly warnings: readonly string[];
}

/**
 * Where a server's session ticket keys come from, as `ngx_ssl_session_ticket_keys()` decides:
 * `none` with `ssl_session_tickets off`; its `ssl_session_ticket_key` files; else the keys of its
 * `ssl_session_cache shared:` zone, rotated every `ssl_session_timeout`; else the
 * master's own.
 */
export type TicketKeySource =
  | { readonly from: 'none' }
  | { readonly from: 'files'; readonly ring: TicketKeyRing }
  | { readonly from: 'zone'; readonly zone: SharedSessionZone; readonly timeoutMs: number }
  | { readonly from: 'master' };

const cache = new WeakMap<ConfBlockView, ServerTls>();

function fail(message: string): never {
  throw new ConfigError(message, undefined);
}

/** Runs a load, turning its {@link CertificateLoadError} into nginx's configuration error. */
function atConfig<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof CertificateLoadError) fail(err.message);
    throw err;
  }
}

/** Reads a PEM file while the configuration is read, with nginx's message when it cannot be opened. */
function readPem(file: TlsFile, what: 'certificate' | 'certificate key' | 'CRL'): string {
  return atConfig(() => readPemSync(file.path, what));
}

/** Loads one certificate (with its chain) and its key, with nginx's messages for each failure, in nginx's order. */
function loadPair(certFile: TlsFile, keyFile: TlsFile, passwords: readonly Buffer[] | undefined): { cert: string; key: LoadedKey } {
  return atConfig(() => {
    const cert = readPemSync(certFile.path, 'certificate');
    const leaf = parseLeaf(certFile.path, cert);
    const key = parseKeyOf(leaf, keyFile.path, readPemSync(keyFile.path, 'certificate key'), passwords, 'SSL_CTX_use_PrivateKey');
    return { cert, key };
  });
}

const VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const DISABLE: Readonly<Record<SecureVersion, number>> = {
  TLSv1: constants.SSL_OP_NO_TLSv1,
  'TLSv1.1': constants.SSL_OP_NO_TLSv1_1,
  'TLSv1.2': constants.SSL_OP_NO_TLSv1_2,
  'TLSv1.3': constants.SSL_OP_NO_TLSv1_3,
};

/** `ssl_protocols` as Node's range plus the SSL_OP_NO_* of the versions missing inside it. */
export function protocolOptions(protocols: readonly TlsProtocolName[]): Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'secureOptions'> {
  const enabled = VERSIONS.filter((version) => protocols.includes(version));
  const min = enabled[0] ?? 'TLSv1.3';
  const max = enabled[enabled.length - 1] ?? 'TLSv1.3';
  let secureOptions = 0;
  for (const version of VERSIONS) if (!enabled.includes(version)) secureOptions |= DISABLE[version];
  return { minVersion: min, maxVersion: max, secureOptions };
}

/**
 * The CAs and CRLs that verify client certificates (`ngx_ssl_client_certificate()`,
 * `ngx_ssl_trusted_certificate()`, `ngx_ssl_crl()`), with the check of `ngx_http_ssl_merge_srv_conf()`.
 */
function clientCaOptions(server: ConfBlockView, mode: VerifyClientMode): { ca?: string[]; crl?: string[] } {
  const cas = [...server.get('ssl_client_certificate'), ...server.get('ssl_trusted_certificate')];
  // optional_no_ca verifies against nothing; nginx 1.27 accepts ssl_trusted_certificate alone.
  if (mode !== 'off' && mode !== 'optional_no_ca' && cas.length === 0) {
    fail('no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client');
  }
  const options: { ca?: string[]; crl?: string[] } = {};
  if (mode === 'off') return options;
  if (cas.length > 0) options.ca = distinctCertificates(cas.map((file) => readPem(file, 'certificate')));
  const crls = server.get('ssl_crl');
  // X509_LOOKUP_load_file() takes every CRL of a file; Node's addCRL() reads the first of a PEM only.
  if (crls.length > 0) options.crl = crls.flatMap((file) => crlBlocks(readPem(file, 'CRL')));
  return options;
}

/**
 * The CA bundles with each certificate once: Node adds every `ca` certificate to the CA names a
 * CertificateRequest lists, where nginx's SSL_load_client_CA_file() lists a name once (a bundle
 * that repeats a certificate must not repeat it on the wire).
 */
function distinctCertificates(bundles: readonly string[]): string[] {
  const seen = new Set<string>();
  const distinct: string[] = [];
  for (const bundle of bundles) {
    const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
    // A file without certificates is left whole, for Node to refuse as before.
    if (blocks === null) distinct.push(bundle);
    for (const block of blocks ?? []) {
      const key = block.replace(/\s+/g, '');
      if (seen.has(key)) continue;
      seen.add(key);
      distinct.push(`${block}\n`);
    }
  }
  return distinct;
}

/**
 * One pair of each key type, the last one: SSL_CTX_use_certificate() replaces the certificate of
 * the same type (nginx loads a second RSA pair over the first), where Node's context would pair
 * the first RSA certificate with the last RSA key and fail with "key values mismatch".
 */
function lastOfEachType<P extends { cert: string }>(pairs: readonly P[]): P[] {
  const typeOf = (pair: P): string => new X509Certificate(pair.cert).publicKey.asymmetricKeyType ?? '';
  return pairs.filter((pair, i) => !pairs.slice(i + 1).some((later) => typeOf(later) === typeOf(pair)));
}

/** `ssl_dhparam`: Node's `dhparam`, the file checked as ngx_ssl_dhparam() reads it. */
function dhparamOption(server: ConfBlockView): { dhparam?: string } {
  const file = server.get('ssl_dhparam');
  return file === undefined ? {} : { dhparam: atConfig(() => readDhParams(file.path)) };
}

/** The ssl_* settings of a server as context options, certificates aside; reads the CA, CRL and ticket key files. */
function baseOptions(server: ConfBlockView, mode: VerifyClientMode): { options: SecureContextOptions; ca: string[] | undefined; ticketKeys: TicketKeySource; commands: ConfCommandResult } {
  const clientCas = clientCaOptions(server, mode);
  const protocols = protocolOptions(server.get('ssl_protocols'));
  const tickets = server.get('ssl_session_tickets');
  const options: SecureContextOptions = {
    ...protocols,
    secureOptions: (protocols.secureOptions ?? 0) | (tickets ? 0 : constants.SSL_OP_NO_TICKET),
    ciphers: server.get('ssl_ciphers'),
    honorCipherOrder: server.get('ssl_prefer_server_ciphers'),
    ecdhCurve: server.get('ssl_ecdh_curve'),
    sessionTimeout: Math.floor(server.get('ssl_session_timeout') / 1000),
    ...dhparamOption(server),
    ...clientCas,
  };
  // ngx_ssl_conf_commands() runs last, over every other setting; stream has no ssl_conf_command in hitless.
  const commands = atConfig(() => applyConfCommands(options, (server.get('ssl_conf_command') as DirectiveValues['ssl_conf_command'] | undefined) ?? []));
  // ngx_ssl_create_connection(): SSL_OP_NO_RENEGOTIATION on every server connection (CVE-2009-3555),
  // over ssl_conf_command too. Node would otherwise let a client renegotiate three times in ten minutes.
  const secureOptions = (commands.options.secureOptions ?? 0) | constants.SSL_OP_NO_RENEGOTIATION;
  return { options: { ...commands.options, secureOptions }, ca: clientCas.ca, ticketKeys: ticketKeySource(server, (secureOptions & constants.SSL_OP_NO_TICKET) === 0), commands };
}

/** `ngx_ssl_session_ticket_keys()`: the files are read (and refused) even with tickets off, as nginx reads them. */
function ticketKeySource(server: ConfBlockView, tickets: boolean): TicketKeySource {
  const files = server.get('ssl_session_ticket_key').map(readTicketKeyFile);
  if (!tickets) return { from: 'none' };
  if (files.length > 0) return { from: 'files', ring: new TicketKeyRing(files) };
  const zone = server.get('ssl_session_cache').shared;
  if (zone !== undefined) return { from: 'zone', zone, timeoutMs: server.get('ssl_session_timeout') };
  return { from: 'master' };
}

/** Builds a context from a server's options and certificates; throws nginx's message for what OpenSSL refuses. */
export function buildContext(server: ConfBlockView, options: SecureContextOptions): SecureContext {
  let context: SecureContext;
  try {
    context = createSecureContext(options);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (/cipher/i.test(reason)) fail(`SSL_CTX_set_cipher_list("${options.ciphers ?? ''}") failed (SSL: error:0A0000B9:SSL routines::no cipher match)`);
    if (/curve|group/i.test(reason)) fail(`SSL_CTX_set1_curves_list("${options.ecdhCurve ?? ''}") failed (SSL: ${reason})`);
    fail(`cannot create the TLS context of the server in ${server.file}:${server.line}: ${reason}`);
  }
  setSessionIdContext(context, sessionIdContext(server, options));
  return context;
}

/** Node's native context: `setSessionIdContext()` is what tls.Server calls with its sessionIdContext. */
interface NativeContext {
  setSessionIdContext?(id: string): void;
}

/**
 * `ngx_ssl_session_id_context()`: a session is bound to the client verification it was made under
 * (mode, depth, the CAs and CRLs), so that a client certificate verified by one server's CAs is
 * never resumed as verified where other CAs are trusted. OpenSSL also refuses to resume any session
 * on a context that verifies peers and has no id context (SSL_R_SESSION_ID_CONTEXT_UNINITIALIZED,
 * an internal error alert): without this, a client with a certificate could never resume.
 */
function sessionIdContext(server: ConfBlockView, options: SecureContextOptions): string {
  const hash = createHash('sha256').update(`${server.get('ssl_verify_client')} ${server.get('ssl_verify_depth')}\n`);
  for (const pem of [options.ca, options.crl].flat()) if (pem !== undefined) hash.update(typeof pem === 'string' ? pem : Buffer.from(pem as Uint8Array));
  // SSL_MAX_SID_CTX_LENGTH is 32 bytes.
  return hash.digest('hex').slice(0, 32);
}

function setSessionIdContext(context: SecureContext, id: string): void {
  (context as SecureContext & { context?: NativeContext }).context?.setSessionIdContext?.(id);
}

/** The certificates OpenSSL's store holds for `ngx_ssl_stapling_issuer()` and OCSP_basic_verify(): ssl_trusted_certificate's and ssl_client_certificate's. */
function trustedPem(server: ConfBlockView): string {
  return [...server.get('ssl_client_certificate'), ...server.get('ssl_trusted_certificate')].map((file) => readPem(file, 'certificate')).join('\n');
}

/** A server's stapling settings; `resolver` is http's (`ngx_http_ssl_init()` passes the server's), absent in stream. */
function staplingSettings(server: ConfBlockView): StaplingSettings {
  const file = server.get('ssl_stapling_file');
  const resolver = server.get('resolver') as DirectiveValues['resolver'];
  return {
    file: file?.path,
    responder: server.get('ssl_stapling_responder'),
    verify: server.get('ssl_stapling_verify'),
    resolver: resolver === undefined ? undefined : { servers: resolver.servers, timeoutMs: server.get('resolver_timeout') },
  };
}

/** The versions a context's options allow, as one string. */
function protocolsKey(options: Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'secureOptions'>): string {
  const disabled = (options.secureOptions ?? 0) & (constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1 | constants.SSL_OP_NO_TLSv1_2 | constants.SSL_OP_NO_TLSv1_3);
  return `${options.minVersion ?? ''} ${options.maxVersion ?? ''} ${disabled}`;
}

/** The groups a context's options offer, after ssl_conf_command (Groups, Options ServerPreference). */
function groupsOf(options: SecureContextOptions): GroupSettings {
  return { groups: serverGroups(options.ecdhCurve), preferServer: options.honorCipherOrder === true };
}

/** The server's TLS, built on first use and cached; throws nginx's ConfigError when a file does not load. */
export function serverTlsOf(server: ConfBlockView): ServerTls {
  const cached = cache.get(server);
  if (cached !== undefined) return cached;
  const certs = server.get('ssl_certificate');
  const keys = server.get('ssl_certificate_key');
  if (certs.length > 0 && keys.length < certs.length) {
    fail(`no "ssl_certificate_key" is defined for certificate "${(certs[certs.length - 1] as TlsFile).written}"`);
  }
  const mode = server.get('ssl_verify_client');
  const compression = (server.get('ssl_certificate_compression') as boolean | undefined) === true;
  // ngx_http_ssl_merge_srv_conf(): checked before the files load, and fatal on any platform.
  if (compression && server.get('ssl_stapling')) fail('"ssl_stapling" is incompatible with "ssl_certificate_compression"');
  const passwords = server.get('ssl_password_file')?.passwords.map((password) => Buffer.from(password, 'latin1'));
  let verify: ClientVerifySettings = { mode, depth: server.get('ssl_verify_depth'), trusted: [], sessionContext: sessionIdContext(server, {}) };
  let context: SecureContext | undefined;
  let variable: VariableCertificates | undefined;
  let settingsContext: SecureContext | undefined;
  let acmeServer = false;
  let contextFor: ServerTls['contextFor'];
  let ticketKeys: TicketKeySource = { from: 'none' };
  let staples: CertificateStaple[] = [];
  let certificates = 0;
  let protocols = protocolsKey(protocolOptions(server.get('ssl_protocols')));
  let groups: GroupSettings = { groups: serverGroups(server.get('ssl_ecdh_curve')), preferServer: server.get('ssl_prefer_server_ciphers') };
  const warnings: string[] = [];
  // ngx_ssl_certificate_compression() without SSL_OP_NO_TX_CERTIFICATE_COMPRESSION (OpenSSL 3.0, as Node 20 bundles).
  if (compression) warnings.push('"ssl_certificate_compression" is not supported on this platform, ignored');
  if (certs.length > 0) {
    const pairs = certs.map((cert, i) => ({ cert, key: keys[i] as TlsFile }));
    const base = baseOptions(server, mode);
    ticketKeys = base.ticketKeys;
    groups = groupsOf(base.options);
    protocols = protocolsKey(base.options);
    verify = { ...verify, trusted: certificatesOf(base.ca?.join('\n') ?? ''), sessionContext: sessionIdContext(server, base.options) };
    // ssl_conf_command Certificate and PrivateKey replace the server's own.
    contextFor = (cert, key) => buildContext(server, { ...base.options, cert: base.commands.cert ?? cert, key: base.commands.key ?? key });
    warnings.push(...base.commands.warnings);
    const acme = pairs.some((pair) => pair.cert.acme === true || pair.key.acme === true);
    if (acme) {
      // nginx-acme's variables hold the certificate in memory ("data:"); hitless serves the store's entry.
      const pair = pairs[0] as { cert: TlsFile; key: TlsFile };
      if (pairs.length > 1 || pair.cert.acme !== true || pair.key.acme !== true) {
        fail('"ssl_certificate $acme_certificate" must be the only "ssl_certificate" of its server, with "ssl_certificate_key $acme_certificate_key" (hitless serves the ACME certificate from its certificate store)');
      }
      settingsContext = buildContext(server, base.options);
      acmeServer = true;
    }
    // ngx_http_ssl_compile_certificates(): one name with variables makes every pair load per handshake.
    else if (pairs.some((pair) => pair.cert.template !== undefined || pair.key.template !== undefined)) {
      // The settings are checked now, as nginx's SSL_CTX is built without a certificate.
      settingsContext = buildContext(server, base.options);
      const build = contextFor;
      variable = new VariableCertificates(pairs, passwords, (loaded) => build(loaded.map((pair) => pair.cert), loaded.map((pair) => pair.key.pem)), server.get('ssl_certificate_cache'));
    } else {
      const loaded = lastOfEachType(pairs.map((pair) => ({ ...loadPair(pair.cert, pair.key, passwords), file: pair.cert })));
      context = contextFor(loaded.map((pair) => pair.cert), loaded.map((pair) => pair.key.pem));
      certificates = loaded.length;
      // With several, which one a handshake sends is asked of OpenSSL (certificate-choice.ts).
      if (server.get('ssl_stapling')) {
        const certificates = loaded.map((pair) => ({ name: pair.file.path, pem: pair.cert }));
        staples = atConfig(() => buildStaples(certificates, trustedPem(server), staplingSettings(server), (reason) => warnings.push(reason)));
      }
    }
    if ((variable !== undefined || acmeServer) && server.get('ssl_stapling')) {
      warnings.push('"ssl_stapling" has no effect with an "ssl_certificate" with variables (as in nginx, whose stapling takes the certificates loaded with the configuration)');
    }
  } else {
    // A server without certificates of its own may still answer certificates of the store: with its
    // settings when they are complete, else (`ssl_verify_client` with no CA) with the default server's.
    try {
      const base = baseOptions(server, mode);
      ticketKeys = base.ticketKeys;
      verify = { ...verify, trusted: certificatesOf(base.ca?.join('\n') ?? ''), sessionContext: sessionIdContext(server, base.options) };
      contextFor = (cert, key) => buildContext(server, { ...base.options, cert, key });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  }
  const sessionCache = SessionCache.of(server.get('ssl_session_cache'), server.get('ssl_session_timeout'));
  const maxSendFragment = Math.min(Math.max((server.get('ssl_buffer_size') as number | undefined) ?? SEND_FRAGMENT_MAX, SEND_FRAGMENT_MIN), SEND_FRAGMENT_MAX);
  const tls = { context, ...(settingsContext === undefined ? {} : { settingsContext }), ...(acmeServer ? { acme: true as const } : {}), rejectHandshake: server.get('ssl_reject_handshake'), verify, variable, contextFor, sessionCache, ticketKeys, staples, certificates, maxSendFragment, protocols, groups, warnings };
  cache.set(server, tls);
  return tls;
}
