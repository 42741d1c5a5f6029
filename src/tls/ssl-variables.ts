/**
 * The `$ssl_*` variables http and stream share (ngx_http_ssl_module's and ngx_stream_ssl_module's
 * tables), read off a connection's {@link TlsConnectionInfo}: not found on a plain connection,
 * empty for the client certificate's on a TLS connection without one (ngx_ssl_get_*()).
 */
import type { X509Certificate } from 'node:crypto';
import type { VariableGetter } from '../core/variables.js';
import { certificateFingerprint, clientVerifyText, escapedCertificate, rfc2253Name } from './client-verify.js';
import type { TlsConnectionInfo } from './sni.js';

/** `$ssl_client_cert` (`ngx_ssl_get_certificate()`): the PEM with a tab after every line break but the last. */
export function tabbedCertificate(cert: X509Certificate): string {
  const pem = cert.toString();
  return pem.slice(0, -1).replaceAll('\n', '\n\t') + pem.slice(-1);
}

/** `$ssl_client_s_dn_legacy` (`X509_NAME_oneline()`): `/C=US/O=Example/CN=name`. */
export function legacyName(multiline: string): string {
  return multiline === '' ? '' : `/${multiline.split('\n').join('/')}`;
}

/** `$ssl_client_v_remain`: whole days left until the certificate expires, 0 within the last day. */
export function daysRemaining(cert: X509Certificate, now = Date.now()): string {
  const end = Date.parse(cert.validTo);
  return end < now + 86_400_000 ? '0' : String(Math.floor((end - now) / 86_400_000));
}

/** The `$ssl_*` getters, for any context that can reach the connection's TLS facts. */
export function sslVariables<C>(tlsOf: (ctx: C) => TlsConnectionInfo | undefined): Record<string, VariableGetter<C>> {
  const client = (read: (cert: X509Certificate) => string): VariableGetter<C> => (ctx) => {
    const tls = tlsOf(ctx);
    if (tls === undefined) return undefined;
    return tls.client === undefined ? '' : read(tls.client.cert);
  };
  return {
    ssl_server_name: (ctx) => tlsOf(ctx)?.serverName,
    ssl_protocol: (ctx) => tlsOf(ctx)?.protocol,
    ssl_cipher: (ctx) => tlsOf(ctx)?.cipher,
    ssl_session_reused: (ctx) => tlsOf(ctx)?.sessionReused,
    ssl_session_id: (ctx) => tlsOf(ctx)?.sessionId(),
    ssl_ciphers: (ctx) => tlsOf(ctx)?.ciphers(),
    ssl_curves: (ctx) => tlsOf(ctx)?.curves(),
    ssl_curve: (ctx) => tlsOf(ctx)?.curve(),
    ssl_alpn_protocol: (ctx) => tlsOf(ctx)?.alpnProtocol,
    // hitless never accepts TLS 1.3 early data (Node has no API for it), so no request is sent in it.
    ssl_early_data: (ctx) => (tlsOf(ctx) === undefined ? undefined : ''),
    ssl_client_verify: (ctx) => {
      const tls = tlsOf(ctx);
      return tls === undefined ? undefined : clientVerifyText(tls.client);
    },
    ssl_client_s_dn: client((cert) => rfc2253Name(cert.subject)),
    ssl_client_i_dn: client((cert) => rfc2253Name(cert.issuer)),
    ssl_client_s_dn_legacy: client((cert) => legacyName(cert.subject)),
    ssl_client_i_dn_legacy: client((cert) => legacyName(cert.issuer)),
    ssl_client_cert: client(tabbedCertificate),
    ssl_client_raw_cert: client((cert) => cert.toString()),
    ssl_client_escaped_cert: client(escapedCertificate),
    ssl_client_fingerprint: client(certificateFingerprint),
    ssl_client_serial: client((cert) => cert.serialNumber),
    ssl_client_v_start: client((cert) => cert.validFrom),
    ssl_client_v_end: client((cert) => cert.validTo),
    ssl_client_v_remain: client((cert) => daysRemaining(cert)),
  };
}
