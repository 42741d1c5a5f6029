/**
 * The TLS side of a virtual server: its certificates loaded (`ngx_ssl_certificates()`) and one
 * {@link SecureContext} built from them and the server's ssl_* settings, once per configuration
 * and cached on the server block, so that `-t`, the check and the worker share one load.
 */
import { createPrivateKey, X509Certificate, constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import type { ConfBlockView } from '../conf/registry.js';
import { certificatesOf, type ClientVerifySettings, type VerifyClientMode } from './client-verify.js';
import type { TlsFile, TlsProtocolName } from './ssl-module.js';
import { followMasterTicketKey, readTicketKeyFile } from './ticket-keys.js';

/** What a handshake that reaches a server gets. */
export interface ServerTls {
  /** Undefined when the server has no `ssl_certificate`: the default server's context answers. */
  readonly context: SecureContext | undefined;
  /** `ssl_reject_handshake on`. */
  readonly rejectHandshake: boolean;
  /** `ssl_verify_client` and `ssl_verify_depth`. */
  readonly verify: ClientVerifySettings;
  /**
   * Builds a context with the server's settings and another certificate and key (one of the store);
   * throws a ConfigError when they do not fit the settings. Undefined when the settings are incomplete.
   */
  readonly contextFor: ((cert: string | string[], key: string | string[]) => SecureContext) | undefined;
}

const cache = new WeakMap<ConfBlockView, ServerTls>();

function fail(message: string): never {
  throw new ConfigError(message, undefined);
}

/** OpenSSL 3's text for a file fopen() cannot open, as nginx prints it. */
function readPem(file: TlsFile, what: string): string {
  try {
    return readFileSync(file.path, 'latin1');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : 'Permission denied';
    return fail(`cannot load ${what} "${file.path}": BIO_new_file() failed (SSL: error:80000002:system library::${reason}:calling fopen(${file.path}, r) error:10000080:BIO routines::no such file)`);
  }
}

/** Loads one certificate (with its chain) and its key, with nginx's messages for each failure. */
function loadPair(certFile: TlsFile, keyFile: TlsFile): { cert: string; key: string } {
  const cert = readPem(certFile, 'certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    return fail(`cannot load certificate "${certFile.path}": PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE)`);
  }
  const key = readPem(keyFile, 'certificate key');
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return fail(`cannot load certificate key "${keyFile.path}": PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER routines::unsupported:No supported data to decode. Input type: PEM)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    fail(`SSL_CTX_use_PrivateKey("${keyFile.path}") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)`);
  }
  return { cert, key };
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
  if (cas.length > 0) options.ca = cas.map((file) => readPem(file, 'certificate'));
  const crls = server.get('ssl_crl');
  if (crls.length > 0) options.crl = crls.map((file) => readPem(file, 'CRL'));
  return options;
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
  let verify: ClientVerifySettings = { mode, depth: server.get('ssl_verify_depth'), trusted: [] };
  let context: SecureContext | undefined;
  let contextFor: ServerTls['contextFor'];
  if (certs.length > 0) {
    const pairs = certs.map((cert, i) => loadPair(cert, keys[i] as TlsFile));
    const settings = serverSettings(server, mode);
    verify = { ...verify, trusted: settings.trusted };
    contextFor = settings.contextFor;
    context = contextFor(pairs.map((pair) => pair.cert), pairs.map((pair) => pair.key));
  } else {
    // A server without certificates of its own may still answer certificates of the store: with its
    // settings when they are complete, else (`ssl_verify_client` with no CA) with the default server's.
    try {
      const settings = serverSettings(server, mode);
      verify = { ...verify, trusted: settings.trusted };
      contextFor = settings.contextFor;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  }
  const tls = { context, contextFor, rejectHandshake: server.get('ssl_reject_handshake'), verify };
  cache.set(server, tls);
  return tls;
}

/** A server's ssl_* settings, read once: the CAs its clients are verified against, and a context builder. */
function serverSettings(server: ConfBlockView, mode: VerifyClientMode): { trusted: ClientVerifySettings['trusted']; contextFor: NonNullable<ServerTls['contextFor']> } {
  const clientCas = clientCaOptions(server, mode);
  const protocols = protocolOptions(server.get('ssl_protocols'));
  const ciphers = server.get('ssl_ciphers');
  const curve = server.get('ssl_ecdh_curve');
  const tickets = server.get('ssl_session_tickets');
  // nginx encrypts with the first ssl_session_ticket_key; Node keeps one key, so the others are unused.
  const ticketFile = tickets ? server.get('ssl_session_ticket_key')[0] : undefined;
  const ticketKeys = ticketFile === undefined ? undefined : readTicketKeyFile(ticketFile);
  const options: SecureContextOptions = {
    ...protocols,
    secureOptions: (protocols.secureOptions ?? 0) | (tickets ? 0 : constants.SSL_OP_NO_TICKET),
    ...(ticketKeys === undefined ? {} : { ticketKeys }),
    ciphers,
    honorCipherOrder: server.get('ssl_prefer_server_ciphers'),
    ecdhCurve: curve,
    sessionTimeout: Math.floor(server.get('ssl_session_timeout') / 1000),
    ...clientCas,
  };
  const contextFor = (cert: string | string[], key: string | string[]): SecureContext => {
    let context: SecureContext;
    try {
      context = createSecureContext({ ...options, cert, key });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (/cipher/i.test(reason)) fail(`SSL_CTX_set_cipher_list("${ciphers}") failed (SSL: error:0A0000B9:SSL routines::no cipher match)`);
      if (/curve|group/i.test(reason)) fail(`SSL_CTX_set1_curves_list("${curve}") failed (SSL: ${reason})`);
      fail(`cannot create the TLS context of the server in ${server.file}:${server.line}: ${reason}`);
    }
    if (tickets && ticketKeys === undefined) followMasterTicketKey(context);
    return context;
  };
  return { trusted: certificatesOf(clientCas.ca?.join('\n') ?? ''), contextFor };
}
