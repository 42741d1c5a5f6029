/**
 * Why a client's TLS handshake failed, as the `hitless:tls:handshake` channel and the
 * `hitless_tls_handshake_failures_total{reason}` metric name it, for http and stream alike.
 */

/** OpenSSL's reason for a failed handshake, from Node's error code (`ERR_SSL_NO_SHARED_CIPHER` is `no_shared_cipher`), or the socket's (`econnreset`). */
export function handshakeFailureReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return 'error';
  return code.replace(/^ERR_SSL_/, '').toLowerCase();
}
