/**
 * Certificates from clients, as `ngx_http_ssl_module` checks them: the handshake asks for one and
 * accepts whatever comes (nginx's `ngx_http_ssl_verify_callback()` always returns 1), and the
 * request is refused afterwards with 495 or 496 (`ngx_http_process_request()`). What OpenSSL's
 * verification says is read here, with the `ssl_verify_depth` limit Node has no option for, and
 * turned into the `$ssl_client_*` values.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { X509_ERRORS } from './x509-errors.js';

/** The modes of `ssl_verify_client`, in nginx's order (0 off, 1 on, 2 optional, 3 optional_no_ca). */
export const VERIFY_CLIENT_MODES = ['off', 'on', 'optional', 'optional_no_ca'] as const;

/** One of {@link VERIFY_CLIENT_MODES}. */
export type VerifyClientMode = (typeof VERIFY_CLIENT_MODES)[number];

/** How a server asks for and checks client certificates. */
export interface ClientVerifySettings {
  /** `ssl_verify_client`; default `off`. */
  readonly mode: VerifyClientMode;
  /** `ssl_verify_depth`; default 1: the client's certificate is signed by a CA of the file. */
  readonly depth: number;
  /** The certificates of `ssl_client_certificate` and `ssl_trusted_certificate`, to measure chains with. */
  readonly trusted: readonly X509Certificate[];
  /**
   * The session id context of the server's contexts (contexts.ts): servers with the same one verify
   * clients alike, so a session resumed under one holds a verification that is valid for the other.
   */
  readonly sessionContext: string;
}

/** `ngx_ssl_verify_error_optional()`: the errors `optional_no_ca` lets through, all about a missing issuer. */
const OPTIONAL_NO_CA_ERRORS: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

/** A verification error as nginx logs and names it. */
export interface VerifyError {
  /** Node's code: `UNABLE_TO_GET_ISSUER_CERT_LOCALLY`. */
  readonly code: string;
  /** OpenSSL's number: 20. */
  readonly number: number;
  /** OpenSSL's text: `unable to get local issuer certificate`. */
  readonly reason: string;
}

/** The certificate a client sent, and what verifying it gave. */
export interface ClientCertificate {
  readonly cert: X509Certificate;
  /** Undefined when the chain verified (`X509_V_OK`). */
  readonly error: VerifyError | undefined;
}

function verifyError(code: string, fallback: string): VerifyError {
  const [number, reason] = X509_ERRORS[code] ?? [0, fallback];
  return { code, number, reason };
}

/** The certificates of a PEM bundle (`ssl_client_certificate`, `ssl_trusted_certificate`). */
export function certificatesOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

/** The certificates the client sent after its own, as Node links them. */
function sentChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const sent: X509Certificate[] = [];
  let cert = peer.issuerCertificate as DetailedPeerCertificate | undefined;
  while (cert !== undefined && cert !== null && sent.length < 100 && !sent.some((known) => known.raw.equals(cert?.raw ?? Buffer.alloc(0)))) {
    sent.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate as DetailedPeerCertificate | undefined;
  }
  return sent;
}

/**
 * The length of the chain OpenSSL built, trust anchor included: Node's own chain (getPeerCertificate)
 * looks issuers up in the handshake's first context, not the one SNI chose, so it is rebuilt here
 * from the client's certificates and the server's CAs, trusted ones first.
 */
function chainLength(leaf: X509Certificate, sent: readonly X509Certificate[], trusted: readonly X509Certificate[]): number {
  const pool = [...trusted, ...sent];
  let cert = leaf;
  let length = 1;
  while (!cert.checkIssued(cert) && length <= pool.length) {
    const subject = cert;
    const issuer = pool.find((candidate) => subject.checkIssued(candidate) && subject.verify(candidate.publicKey));
    if (issuer === undefined) break;
    cert = issuer;
    length += 1;
  }
  return length;
}

/**
 * Reads the client's certificate off a finished handshake; undefined when none was sent.
 * OpenSSL builds chains one longer than the depth and fails those with `X509_V_ERR_CERT_CHAIN_TOO_LONG`.
 */
export function clientCertificateOf(socket: TLSSocket, settings: ClientVerifySettings): ClientCertificate | undefined {
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return undefined;
  // tls.Server copies this into authorizationError; a TLSSocket wrapped by hand must ask its handle.
  const failed = (socket as TLSSocket & { _handle?: { verifyError?(): Error | null } | null })._handle?.verifyError?.() ?? null;
  if (failed !== null) {
    const code = (failed as NodeJS.ErrnoException).code ?? failed.message;
    return { cert, error: verifyError(code, failed.message) };
  }
  if (chainLength(cert, sentChain(socket.getPeerCertificate(true)), settings.trusted) > settings.depth + 1) return { cert, error: verifyError('CERT_CHAIN_TOO_LONG', '') };
  return { cert, error: undefined };
}

/** What the request phase does with a client certificate (`ngx_http_process_request()`). */
export type ClientVerdict = { readonly status: 495; readonly error: VerifyError } | { readonly status: 496 } | undefined;

/** 495 for a certificate that did not verify (unless `optional_no_ca` excuses it), 496 for none with `on`. */
export function clientVerdict(settings: ClientVerifySettings, client: ClientCertificate | undefined): ClientVerdict {
  if (settings.mode === 'off') return undefined;
  const error = client?.error;
  if (error !== undefined && (settings.mode !== 'optional_no_ca' || !OPTIONAL_NO_CA_ERRORS.has(error.code))) return { status: 495, error };
  if (settings.mode === 'on' && client === undefined) return { status: 496 };
  return undefined;
}

/** `$ssl_client_verify` (`ngx_ssl_get_client_verify()`): NONE, SUCCESS or FAILED:reason. */
export function clientVerifyText(client: ClientCertificate | undefined): string {
  if (client === undefined) return 'NONE';
  return client.error === undefined ? 'SUCCESS' : `FAILED:${client.error.reason}`;
}

/**
 * A name as `X509_NAME_print_ex(..., XN_FLAG_RFC2253)` prints it, as nginx 1.11.6+ gives
 * `$ssl_client_s_dn`: the most specific attribute first, commas between, RFC 2253 escapes (Node's
 * text has them already), and bytes above 0x7f as `\XX` (ASN1_STRFLGS_ESC_MSB).
 */
export function rfc2253Name(multiline: string): string {
  if (multiline === '') return '';
  const escapeMsb = (text: string): string =>
    text.replace(/[^\x00-\x7f]/gu, (char) => [...Buffer.from(char, 'utf8')].map((byte) => `\\${byte.toString(16).toUpperCase()}`).join(''));
  return multiline
    .split('\n')
    .reverse()
    .map((rdn) => escapeMsb(rdn.replaceAll(' + ', '+')))
    .join(',');
}

/** The bytes `ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)` leaves alone. */
const URI_COMPONENT_SAFE = /[A-Za-z0-9\-._~]/;

/** `$ssl_client_escaped_cert`: the PEM, escaped as a URI component with nginx's table (uppercase hex). */
export function escapedCertificate(cert: X509Certificate): string {
  let out = '';
  for (const byte of Buffer.from(cert.toString(), 'latin1')) {
    const char = String.fromCharCode(byte);
    out += URI_COMPONENT_SAFE.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** `$ssl_client_fingerprint`: the SHA1 of the DER, lowercase hex without separators (`ngx_hex_dump()`). */
export function certificateFingerprint(cert: X509Certificate): string {
  return createHash('sha1').update(cert.raw).digest('hex');
}
