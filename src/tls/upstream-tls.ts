/**
 * TLS to upstreams, as nginx's `proxy_ssl_*` directives set it up: one secure context per set of
 * settings, the handshake over an already connected TCP socket, nginx's post-handshake checks
 * (`SSL_get_verify_result`, then `ngx_ssl_check_host`) and one cached session per peer and name.
 */
import { createHash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect, createSecureContext, type PeerCertificate, type SecureContext, type SecureContextOptions, type SecureVersion, type TLSSocket } from 'node:tls';
import { X509_ERRORS } from './x509-errors.js';
import { errnoText } from '../core/errno.js';
import { CertificateLoadError, crlBlocks, parseKeyOf, parseLeaf, readPemSync } from './certificate-files.js';
import { CertificateCache, CertificateContexts, loadConnectionCertificate, type CertificateCacheSetting, type CertificateCaches, type CertificatePaths } from './certificate-cache.js';
import { applyConfCommands } from './ssl-conf-command.js';
import type { TlsFile } from './ssl-module.js';
import { isAbsolute, resolve } from 'node:path';
import { compileTemplate, type VariableTable } from '../core/variables.js';

/** What the `proxy_ssl_*` directives of one location say. */
export interface UpstreamTlsSettings {
  /** `proxy_ssl_verify`; default off. */
  readonly verify: boolean;
  /** `proxy_ssl_trusted_certificate`, a full path; the only trust anchors used when verifying (read only then, as nginx). */
  readonly trustedCertificate: string | undefined;
  /** `proxy_ssl_verify_depth`: most intermediate certificates allowed; default 1. */
  readonly verifyDepth: number;
  /** `proxy_ssl_server_name`: send SNI; default off. */
  readonly serverName: boolean;
  /** `proxy_ssl_protocols`; default TLSv1.2 TLSv1.3. */
  readonly protocols: readonly string[];
  /** `proxy_ssl_ciphers`, in OpenSSL's syntax; default DEFAULT. */
  readonly ciphers: string;
  /** `proxy_ssl_certificate` and `proxy_ssl_certificate_key`, for mutual TLS; with a template, evaluated per connection by the caller. */
  readonly certificate: TlsFile | undefined;
  readonly certificateKey: TlsFile | undefined;
  /** `proxy_ssl_password_file`: passphrases of an encrypted key, tried in order. */
  readonly passwords: readonly Buffer[] | undefined;
  /** `proxy_ssl_session_reuse`; default on. */
  readonly sessionReuse: boolean;
  /** `proxy_ssl_crl`, a full path; checked (the whole chain) when verifying. */
  readonly crl: string | undefined;
  /** `proxy_ssl_conf_command` pairs, applied last. */
  readonly confCommands: readonly (readonly [string, string])[];
  /** `proxy_ssl_certificate_cache`; undefined is off. */
  readonly certificateCache: CertificateCacheSetting | undefined;
}

/** Settings that cannot be loaded; `reason` is phrased as nginx phrases it. */
export class UpstreamTlsLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamTlsLoadError';
  }
}

/** The outcome of one handshake; `local` marks a failure of this side (a certificate that does not load: nginx answers 500). */
export type UpstreamHandshake =
  | { readonly ok: true; readonly socket: TLSSocket }
  | { readonly ok: false; readonly message: string; readonly timedOut: boolean; readonly local?: true };

const VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** The SSL name nginx uses (ngx_http_upstream_ssl_name): the host part, without a port. */
export function sslHostName(name: string): string {
  const start = name.startsWith('[') ? Math.max(name.indexOf(']'), 0) : 0;
  const colon = name.indexOf(':', start);
  return colon === -1 ? name : name.slice(0, colon);
}

/**
 * `ngx_http_upstream_ssl_certificate()` (and the stream one): the certificate and key names with
 * variables, evaluated for one connection; an empty certificate name is no certificate. A relative
 * result is resolved against the configuration's directory.
 */
export function certificatePathsOf<R>(settings: UpstreamTlsSettings, table: VariableTable<R>): (request: R) => CertificatePaths | undefined {
  const pathOf = (file: TlsFile): ((request: R) => string) => {
    if (file.template === undefined) return () => file.path;
    const evaluate = compileTemplate(file.template, table);
    return (request) => {
      const name = evaluate(request);
      return name === '' || isAbsolute(name) ? name : resolve(file.path, name);
    };
  };
  if (settings.certificate === undefined || settings.certificateKey === undefined) return () => undefined;
  const cert = pathOf(settings.certificate);
  const key = pathOf(settings.certificateKey);
  return (request) => {
    const certPath = cert(request);
    return certPath === '' ? undefined : { cert: certPath, key: key(request) };
  };
}

/** Runs a load of certificate-files.ts, its {@link CertificateLoadError} as an {@link UpstreamTlsLoadError}. */
function atLoad<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof CertificateLoadError) throw new UpstreamTlsLoadError(err.message, { cause: err });
    throw err;
  }
}

/** A location's TLS client: build it once per generation with `load`, then `handshake` per connection. */
export class UpstreamTls {
  /** Identifies the settings (and the files' contents): pooled connections are reused only under the same id. */
  readonly id: string;
  readonly settings: UpstreamTlsSettings;
  /** True when the certificate's names have variables: each handshake is given its {@link CertificatePaths}. */
  readonly variableCertificate: boolean;
  /** What -t warns of: the proxy_ssl_conf_command commands Node has no way to apply. */
  readonly warnings: readonly string[];
  readonly #context: SecureContext;
  readonly #contexts: CertificateContexts | undefined;
  readonly #cache: CertificateCache | undefined;
  readonly #sessions = new Map<string, Buffer>();

  private constructor(settings: UpstreamTls['settings'], context: SecureContext, id: string, warnings: readonly string[], variable: { contexts: CertificateContexts; cache: CertificateCache | undefined } | undefined) {
    this.settings = settings;
    this.#context = context;
    this.id = id;
    this.warnings = warnings;
    this.variableCertificate = variable !== undefined;
    this.#contexts = variable?.contexts;
    this.#cache = variable?.cache;
  }

  /**
   * Reads the files and builds the secure context, as ngx_http_proxy_set_ssl() does; throws
   * UpstreamTlsLoadError in nginx's words. `caches` gives levels that inherit one
   * proxy_ssl_certificate_cache the same cache.
   */
  static load(settings: UpstreamTlsSettings, caches?: CertificateCaches, confCommand = 'proxy_ssl_conf_command'): UpstreamTls {
    const hash = createHash('sha256').update(JSON.stringify(settings));
    // ngx_ssl_trusted_certificate() and ngx_ssl_crl() only with proxy_ssl_verify on.
    // ngx_ssl_trusted_certificate() says "cannot load certificate" of a trusted certificate too.
    const ca = !settings.verify || settings.trustedCertificate === undefined ? undefined : atLoad(() => readPemSync(settings.trustedCertificate as string, 'certificate'));
    const crl = !settings.verify || settings.crl === undefined ? undefined : crlBlocks(atLoad(() => readPemSync(settings.crl as string, 'CRL')));
    const cert = settings.certificate;
    const key = settings.certificateKey;
    const variable = cert !== undefined && (cert.template !== undefined || key?.template !== undefined);
    let pair: { cert: string; key: string } | undefined;
    if (cert !== undefined && key !== undefined && !variable) {
      pair = atLoad(() => {
        const text = readPemSync(cert.path, 'certificate');
        const leaf = parseLeaf(cert.path, text);
        return { cert: text, key: parseKeyOf(leaf, key.path, readPemSync(key.path, 'certificate key'), settings.passwords, 'SSL_CTX_use_PrivateKey').pem };
      });
    }
    for (const part of [ca, crl?.join(''), pair?.cert, pair?.key]) hash.update(part ?? '-');
    const versions = VERSIONS.filter((version) => settings.protocols.includes(version));
    const base: SecureContextOptions = {
      ...(ca === undefined ? {} : { ca }),
      ...(crl === undefined ? {} : { crl }),
      ciphers: settings.ciphers,
      minVersion: versions[0] ?? 'TLSv1.2',
      maxVersion: versions[versions.length - 1] ?? 'TLSv1.3',
    };
    const commands = atLoad(() => applyConfCommands(base, settings.confCommands));
    for (const part of [commands.cert, commands.key]) hash.update(part ?? '-');
    // proxy_ssl_conf_command Certificate and PrivateKey replace the location's certificate (SSL_CONF_cmd() runs last).
    const own = commands.cert !== undefined && commands.key !== undefined ? { cert: commands.cert, key: commands.key } : pair;
    let context: SecureContext;
    try {
      context = createSecureContext({ ...commands.options, ...(own === undefined ? {} : own) });
    } catch (err) {
      const file = settings.certificate?.path ?? settings.crl ?? settings.trustedCertificate ?? '';
      throw new UpstreamTlsLoadError(`cannot load certificate "${file}": ${(err as Error).message}`, { cause: err });
    }
    const warnings = commands.warnings.map((warning) => warning.replace('"ssl_conf_command', `"${confCommand}`));
    const cache = settings.certificateCache === undefined ? undefined : (caches?.for(settings.certificateCache) ?? new CertificateCache(settings.certificateCache));
    const perConnection = variable && commands.cert === undefined ? { contexts: new CertificateContexts(commands.options), cache } : undefined;
    return new UpstreamTls(settings, context, hash.digest('hex').slice(0, 16), warnings, perConnection);
  }

  /**
   * Runs the handshake over a connected socket to `peer`, for the SSL name `name` (from
   * `proxy_ssl_name`, port already stripped), and checks the certificate as nginx's
   * ngx_http_upstream_ssl_handshake() does when `proxy_ssl_verify` is on. The socket is destroyed
   * on failure; messages lack nginx's ` while SSL handshaking to upstream` tail. `alpn` is offered
   * by ALPN when given (grpcs offers `h2`, as ngx_http_grpc_set_ssl() does). `certificate` is
   * what a certificate with variables names for this connection (ngx_http_upstream_ssl_certificate());
   * one that does not load ends it with a `local` failure, nginx's 500.
   */
  handshake(socket: Socket, peer: string, name: string, timeoutMs: number, done: (result: UpstreamHandshake) => void, alpn?: readonly string[], certificate?: CertificatePaths): void {
    const contexts = this.#contexts;
    if (contexts === undefined || certificate === undefined) {
      this.#handshake(socket, peer, name, timeoutMs, done, this.#context, alpn);
      return;
    }
    const started = Date.now();
    let closed = false;
    const onClose = (): void => {
      closed = true;
    };
    socket.once('close', onClose);
    loadConnectionCertificate(certificate, this.#cache, this.settings.passwords).then(
      (loaded) => {
        socket.off('close', onClose);
        if (closed) {
          done({ ok: false, message: 'peer closed connection in SSL handshake', timedOut: false });
          return;
        }
        let context: SecureContext;
        try {
          context = contexts.get(loaded.cert, loaded.key);
        } catch (err) {
          socket.destroy();
          done({ ok: false, message: `cannot load certificate "${certificate.cert}": ${(err as Error).message}`, timedOut: false, local: true });
          return;
        }
        this.#handshake(socket, peer, name, Math.max(timeoutMs - (Date.now() - started), 1), done, context, alpn, ` ${certificate.cert} ${certificate.key}`);
      },
      (err: unknown) => {
        socket.off('close', onClose);
        socket.destroy();
        done({ ok: false, message: err instanceof Error ? err.message : String(err), timedOut: false, local: true });
      },
    );
  }

  #handshake(socket: Socket, peer: string, name: string, timeoutMs: number, done: (result: UpstreamHandshake) => void, secureContext: SecureContext, alpn?: readonly string[], tag = ''): void {
    const settings = this.settings;
    // A session is resumed only with the certificate it was made with.
    const sessionKey = `${peer} ${name}${tag}`;
    const session = settings.sessionReuse ? this.#sessions.get(sessionKey) : undefined;
    // nginx sends no SNI for an address literal (ngx_http_upstream_ssl_name), and neither may Node (RFC 6066 section 3).
    const bare = name.startsWith('[') ? name.slice(1, -1) : name;
    const sni = settings.serverName && name !== '' && isIP(bare) === 0 ? name : undefined;
    const tls = connect({
      socket,
      secureContext,
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
