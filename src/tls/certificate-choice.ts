/**
 * Which certificate OpenSSL sends on a connection whose SSL holds more than one (RSA and ECDSA
 * side by side), found before it is chosen. nginx staples per certificate: its status callback
 * (`ngx_ssl_certificate_status_callback()`) runs after tls_choose_sigalg() and reads
 * SSL_get_certificate(). Node's 'OCSPRequest' is emitted from the certificate callback, before
 * OpenSSL picks one (TLS 1.2 by the cipher suite, TLS 1.3 by the shared signature algorithms), and
 * names the context's last certificate; Node's own status callback (TLSExtStatusCallback in
 * crypto_tls.cc) then sends the one response set then, whichever certificate was chosen.
 *
 * So the choice is asked of OpenSSL itself: the same ClientHello is handed to a server socket in
 * memory on the same contexts, and the certificate it holds once it wrote its first flight is the
 * one the connection will send. The choice depends on the ClientHello and the SSL's settings only
 * (the contexts' certificates, ciphers, signature algorithms, groups and options; the SNI context's
 * certificate Node adds to the SSL): no randomness, nothing of the connection. Costs one more key
 * exchange and signature per such handshake.
 */
import { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';

/**
 * The DER of the certificate a server socket on `initial` (and `sni`, which Node's SNI callback
 * hands it when the ClientHello names a server) sends for `hello`; undefined when the rehearsal
 * ends without one (an alert, a resumption) or `abort` fires first.
 */
export function chosenCertificate(hello: Buffer, initial: SecureContext, sni: SecureContext | undefined, abort: AbortSignal): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (der: Buffer | undefined): void => {
      if (settled) return;
      settled = true;
      abort.removeEventListener('abort', aborted);
      rehearsal.destroy();
      resolve(der);
    };
    const aborted = (): void => settle(undefined);
    // The first bytes OpenSSL writes follow tls_post_process_client_hello(), which made the choice
    // (SSL_get_certificate() is then the chosen one: tls_choose_sigalg() sets s->cert->key).
    const wire = new Duplex({
      read() {},
      write(_chunk: Buffer, _encoding, callback) {
        callback();
        settle(rehearsal.isSessionReused() ? undefined : rehearsal.getX509Certificate()?.raw);
      },
    });
    const rehearsal = new TLSSocket(wire, {
      isServer: true,
      secureContext: initial,
      ...(sni === undefined ? {} : { SNICallback: (_name: string, done: (err: Error | null, context: SecureContext) => void) => done(null, sni) }),
    });
    rehearsal.on('error', () => settle(undefined));
    rehearsal.on('close', () => settle(undefined));
    if (abort.aborted) {
      settle(undefined);
      return;
    }
    abort.addEventListener('abort', aborted);
    wire.push(hello);
  });
}
