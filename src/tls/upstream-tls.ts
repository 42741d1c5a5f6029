/**
 * TLS to upstreams, as nginx's `proxy_ssl_*` directives set it up: one secure context per set of
 * settings, the handshake over an already connected TCP socket, nginx's post-handshake checks
 * (`SSL_get_verify_result`, then `ngx_ssl_check_host`) and one cached session per peer and name.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect, createSecureContext, type PeerCertificate, type SecureContext, type SecureVersion, type TLSSocket } from 'node:tls';
import { X509_ERRORS } from './x509-errors.js';
import { errnoText } from '../core/errno.js';

/** What the `proxy_ssl_*` directives of one location say. */
export interface UpstreamTlsSettings {
  /** `proxy_ssl_verify`; default off. */
  readonly verify: boolean;
  /** `proxy_ssl_trusted_certificate`, a full path; the only trust anchors used when verifying. */
  readonly trustedCertificate: string | undefined;
  /** `proxy_ssl_verify_depth`: most intermediate certificates allowed; default 1. */
  readonly verifyDepth: number;
  /** `proxy_ssl_server_name`: send SNI; default off. */
  readonly serverName: boolean;
  /** `proxy_ssl_protocols`; default TLSv1.2 TLSv1.3. */
  readonly protocols: readonly string[];
  /** `proxy_ssl_ciphers`, in OpenSSL's syntax; default DEFAULT. */
  readonly ciphers: string;
  /** `proxy_ssl_certificate` and `proxy_ssl_certificate_key`, full paths, for mutual TLS. */
  readonly certificate: string | undefined;
  readonly certificateKey: string | undefined;
  /** `proxy_ssl_session_reuse`; default on. */
  readonly sessionReuse: boolean;
}

/** Settings that cannot be loaded; `reason` is phrased as nginx phrases it. */
export class UpstreamTlsLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamTlsLoadError';
  }
}

/** The outcome of one handshake. */
export type UpstreamHandshake =
  | { readonly ok: true; readonly socket: TLSSocket }
  | { readonly ok: false; readonly message: string; readonly timedOut: boolean };

const VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** The SSL name nginx uses (ngx_http_upstream_ssl_name): the host part, without a port. */
export function sslHostName(name: string): string {
  const start = name.startsWith('[') ? Math.max(name.indexOf(']'), 0) : 0;
  const colon = name.indexOf(':', start);
  return colon === -1 ? name : name.slice(0, colon);
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UpstreamTlsLoadError(`cannot load ${what} "${path}": BIO_new_file() failed (${errnoText(err)})`, { cause: err });
  }
}

/** A location's TLS client: build it once per generation with `load`, then `handshake` per connection. */
export class UpstreamTls {
  /** Identifies the settings (and the files' contents): pooled connections are reused only under the same id. */
  readonly id: string;
  readonly settings: UpstreamTlsSettings;
  readonly #context: SecureContext;
  readonly #sessions = new Map<string, Buffer>();

  private constructor(settings: UpstreamTlsSettings, context: SecureContext, id: string) {
    this.settings = settings;
    this.#context = context;
    this.id = id;
  }

  /** Reads the files and builds the secure context; throws UpstreamTlsLoadError in nginx's words. */
  static load(settings: UpstreamTlsSettings): UpstreamTls {
    const hash = createHash('sha256').update(JSON.stringify(settings));
    const ca = settings.trustedCertificate === undefined ? undefined : readPem(settings.trustedCertificate, 'trusted certificate');
    const cert = settings.certificate === undefined ? undefined : readPem(settings.certificate, 'certificate');
    const key = settings.certificateKey === undefined ? undefined : readPem(settings.certificateKey, 'certificate key');
    for (const part of [ca, cert, key]) hash.update(part ?? '-');
    const versions = VERSIONS.filter((version) => settings.protocols.includes(version));
    const minVersion = versions[0] ?? 'TLSv1.2';
    const maxVersion = versions[versions.length - 1] ?? 'TLSv1.3';
    let context: SecureContext;
    try {
      context = createSecureContext({
        ...(ca === undefined ? {} : { ca }),
        ...(cert === undefined ? {} : { cert }),
        ...(key === undefined ? {} : { key }),
        ciphers: settings.ciphers,
        minVersion,
        maxVersion,
      });
    } catch (err) {
      const file = settings.certificate ?? settings.trustedCertificate ?? '';
      throw new UpstreamTlsLoadError(`cannot load certificate "${file}": ${(err as Error).message}`, { cause: err });
    }
    return new UpstreamTls(settings, context, hash.digest('hex').slice(0, 16));
  }

  /**
   * Runs the handshake over a connected socket to `peer`, for the SSL name `name` (from
   * `proxy_ssl_name`, port already stripped), and checks the certificate as nginx's
   * ngx_http_upstream_ssl_handshake() does when `proxy_ssl_verify` is on. The socket is destroyed
   * on failure; messages lack nginx's ` while SSL handshaking to upstream` tail. `alpn` is offered
   * by ALPN when given (grpcs offers `h2`, as ngx_http_grpc_set_ssl() does).
   */
  handshake(socket: Socket, peer: string, name: string, timeoutMs: number, done: (result: UpstreamHandshake) => void, alpn?: readonly string[]): void {
    const settings = this.settings;
    const sessionKey = `${peer} ${name}`;
    const session = settings.sessionReuse ? this.#sessions.get(sessionKey) : undefined;
    // nginx sends no SNI for an address literal (ngx_http_upstream_ssl_name), and neither may Node (RFC 6066 section 3).
    const bare = name.startsWith('[') ? name.slice(1, -1) : name;
    const sni = settings.serverName && name !== '' && isIP(bare) === 0 ? name : undefined;
    const tls = connect({
      socket,
      secureContext: this.#context,
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(sni === undefined ? {} : { servername: sni }),
      ...(session === undefined ? {} : { session }),
      ...(alpn === undefined ? {} : { ALPNProtocols: [...alpn] }),
    });
    if (settings.sessionReuse) tls.on('session', (data: Buffer) => this.#sessions.set(sessionKey, data));
    let finished = false;
    const finish = (result: UpstreamHandshake): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      tls.off('error', onError);
      tls.off('close', onClose);
      if (!result.ok) {
        // A failed peer's session is not offered again (nginx: SSL_CTX_remove_session on failure).
        this.#sessions.delete(sessionKey);
        tls.destroy();
        socket.destroy();
      }
      done(result);
    };
    const timer = setTimeout(() => finish({ ok: false, message: 'upstream timed out (110: Connection timed out)', timedOut: true }), timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      const message = err.code === 'ECONNRESET' || err.code === 'EPIPE' ? `peer closed connection in SSL handshake (${errnoText(err)})` : `SSL_do_handshake() failed (SSL: ${err.message})`;
      finish({ ok: false, message, timedOut: false });
    };
    const onClose = (): void => finish({ ok: false, message: 'peer closed connection in SSL handshake', timedOut: false });
    tls.on('error', onError);
    tls.once('close', onClose);
    tls.once('secureConnect', () => {
      const failure = settings.verify ? this.#verify(tls, bare) : undefined;
      if (failure !== undefined) finish({ ok: false, message: failure, timedOut: false });
      else finish({ ok: true, socket: tls });
    });
  }

  /** nginx's checks after the handshake: the chain (with proxy_ssl_verify_depth), then the name. */
  #verify(tls: TLSSocket, name: string): string | undefined {
    const code = tls.authorizationError as unknown as string | Error | null | undefined;
    if (code !== null && code !== undefined) {
      const key = typeof code === 'string' ? code : ((code as NodeJS.ErrnoException).code ?? code.message);
      const [number, text] = X509_ERRORS[key] ?? [0, key];
      return `upstream SSL certificate verify error: (${number}:${text})`;
    }
    // A resumed session carries no peer chain; it was cached for this peer and name only after
    // passing these checks, which is why Node's own tls.connect skips them on resumption too.
    if (tls.isSessionReused()) return undefined;
    const cert = tls.getPeerCertificate(true);
    if (intermediates(cert) > this.settings.verifyDepth) return `upstream SSL certificate verify error: (22:certificate chain too long)`;
    if (checkServerIdentity(name, cert) !== undefined) return `upstream SSL certificate does not match "${name}"`;
    return undefined;
  }
}

/** The intermediate certificates between the peer's certificate and the trust anchor (OpenSSL's verify depth). */
function intermediates(cert: PeerCertificate & { issuerCertificate?: PeerCertificate }): number {
  let count = 0;
  let current = cert;
  const seen = new Set<string>();
  while (current.issuerCertificate !== undefined && current.issuerCertificate !== current && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    current = current.issuerCertificate as typeof cert;
    count++;
  }
  // The last certificate reached is the anchor (self-issued), which does not count.
  return Math.max(count - 1, 0);
}
