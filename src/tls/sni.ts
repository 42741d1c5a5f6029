/**
 * TLS termination for one address:port: the certificate chosen by SNI with nginx's server_name
 * rules (`ngx_http_ssl_servername()`), ALPN (`ngx_http_ssl_alpn_select()`), and what a request
 * later reads of the handshake (`$ssl_protocol`, `$ssl_cipher`...).
 */
import { constants } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { chosenCertificate } from './certificate-choice.js';
import { clientCertificateOf, type ClientCertificate, type ClientVerifySettings } from './client-verify.js';
import { cipherListText, groupListText, negotiatedGroup, parseClientHello, type ClientHello, type GroupSettings } from './client-hello.js';
import type { ServerTls, TicketKeySource } from './contexts.js';
import { TicketKeyRing, useTicketKeyRing } from './ticket-keys.js';
import type { CertificateStaple } from './ocsp-stapling.js';
import type { ErrorLog } from '../core/log.js';
import type { TlsRuntime } from './tls-runtime.js';

/** What the variables read of an established TLS connection, captured once. */
export interface TlsConnectionInfo {
  /** `$ssl_server_name`: the SNI name, or empty. */
  readonly serverName: string;
  /** `$ssl_protocol`: `TLSv1.3`. */
  readonly protocol: string;
  /** `$ssl_cipher`: OpenSSL's name of the cipher suite. */
  readonly cipher: string;
  /** `$ssl_session_reused`: `r` or `.`. */
  readonly sessionReused: string;
  /** The client's certificate and its verification; undefined when none was sent. */
  readonly client: ClientCertificate | undefined;
  /** `$ssl_alpn_protocol`: the protocol ALPN chose, or empty. */
  readonly alpnProtocol: string;
  /** `$ssl_session_id`: read when first asked for, from the session OpenSSL keeps on the socket. */
  readonly sessionId: () => string;
  /** `$ssl_ciphers`: the cipher suites the client offered, by OpenSSL's names. */
  readonly ciphers: () => string;
  /** `$ssl_curves`: the groups the client offered. */
  readonly curves: () => string;
  /** `$ssl_curve`: the group of the key exchange, as OpenSSL would negotiate it (client-hello.ts). */
  readonly curve: () => string;
}

/** The ClientHello a handshake began with, when the first bytes held all of it. */
const handshakeHello = new WeakMap<TLSSocket, ClientHello>();
/** The group settings of the server whose context finished each handshake. */
const handshakeGroups = new WeakMap<TLSSocket, GroupSettings>();

/** The verification settings of the server whose context finished each handshake (by SNI, or the default). */
const handshakeVerify = new WeakMap<TLSSocket, ClientVerifySettings>();

/** The client verification of the server whose context finished the handshake (by SNI, or the default). */
export function handshakeVerifyOf(socket: TLSSocket): ClientVerifySettings | undefined {
  return handshakeVerify.get(socket);
}

/** Reads {@link TlsConnectionInfo} off a socket whose handshake is done. */
export function tlsInfoOf(socket: TLSSocket): TlsConnectionInfo {
  const servername = (socket as TLSSocket & { servername?: string | false }).servername;
  const verify = handshakeVerify.get(socket);
  return {
    serverName: typeof servername === 'string' ? servername : '',
    protocol: socket.getProtocol() ?? '',
    cipher: socket.getCipher()?.name ?? '',
    sessionReused: socket.isSessionReused() ? 'r' : '.',
    client: verify === undefined || verify.mode === 'off' ? undefined : clientCertificateOf(socket, verify),
    alpnProtocol: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : '',
    sessionId: memoSessionId(socket),
    ...helloVariables(socket),
  };
}

/** The ClientHello's variables; empty when the ClientHello was not read whole from the first bytes. */
function helloVariables(socket: TLSSocket): Pick<TlsConnectionInfo, 'ciphers' | 'curves' | 'curve'> {
  const hello = handshakeHello.get(socket);
  const groups = handshakeGroups.get(socket);
  if (hello === undefined) return { ciphers: () => '', curves: () => '', curve: () => '' };
  const protocol = socket.getProtocol() ?? '';
  const cipher = socket.getCipher()?.name ?? '';
  const reused = socket.isSessionReused();
  return {
    ciphers: () => cipherListText(hello),
    curves: () => groupListText(hello),
    curve: () => (groups === undefined || (reused && protocol !== 'TLSv1.3') ? '' : negotiatedGroup(hello, protocol, cipher, groups)),
  };
}

/** `$ssl_session_id`, read once: lowercase hex of the id in the session's DER (`SSL_SESSION_get_id()`). */
function memoSessionId(socket: TLSSocket): () => string {
  let id: string | undefined;
  return () => {
    id ??= sessionIdOf(socket.getSession());
    return id;
  };
}

/**
 * The session id in OpenSSL's DER encoding of a session (`SSL_SESSION_ASN1`): a SEQUENCE of
 * version, SSL version, cipher, then the session id, an OCTET STRING. Empty when unreadable.
 */
export function sessionIdOf(der: Buffer | undefined): string {
  if (der === undefined) return '';
  let pos = 0;
  const header = (): { tag: number; length: number } | undefined => {
    const tag = der[pos++];
    let length = der[pos++];
    if (tag === undefined || length === undefined) return undefined;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      length = 0;
      for (let i = 0; i < bytes; i++) length = (length << 8) | (der[pos++] ?? 0);
    }
    return { tag, length };
  };
  if (header()?.tag !== 0x30) return '';
  for (let field = 0; field < 4; field++) {
    const item = header();
    if (item === undefined || pos + item.length > der.length) return '';
    if (field === 3) return item.tag === 0x04 ? der.subarray(pos, pos + item.length).toString('hex') : '';
    pos += item.length;
  }
  return '';
}

/** Node keeps the verify mode on the connection; `TLSSocket.renegotiate()` reaches it the same way. */
interface VerifyModeHandle {
  setVerifyMode?(requestCert: boolean, rejectUnauthorized: boolean): void;
}

/**
 * `SSL_set_verify()` as `ngx_http_ssl_servername()` calls it once SNI picked a server: a certificate
 * is asked for when that server verifies clients, and never refused at the TLS level.
 */
function setVerifyMode(socket: TLSSocket, verify: ClientVerifySettings, groups: GroupSettings): void {
  handshakeVerify.set(socket, verify);
  handshakeGroups.set(socket, groups);
  (socket as TLSSocket & { _handle?: VerifyModeHandle | null })._handle?.setVerifyMode?.(verify.mode !== 'off', false);
}

/** Node's answer to 'OCSPRequest': the response to staple, or none. */
type OcspDone = (err: Error | null, response?: Buffer) => void;

/** A handshake's certificates as Node's SSL gets them: from the context it starts on, then the SNI callback's. */
interface HandshakeCertificates {
  /** The ClientHello, when the first bytes read held all of it. */
  readonly hello: Buffer | undefined;
  readonly initial: SecureContext;
  /** How many certificates `initial` holds (one per key type). */
  readonly initialCount: number;
  /** The context the SNI callback handed, if any. */
  sni: SecureContext | undefined;
}

/**
 * Whether the SSL may hold more than one certificate, OpenSSL choosing after 'OCSPRequest'. Node's
 * SNI context does not replace the SSL's certificates (SSL_set_SSL_CTX() as nginx does): its
 * UseSNIContext() adds the context's last certificate over the one of its key type.
 */
function holdsSeveral(handshake: HandshakeCertificates): boolean {
  return handshake.sni === undefined || handshake.sni === handshake.initial ? handshake.initialCount > 1 : handshake.initialCount > 0;
}

/** The name lookup of one address:port (http's and stream's `VirtualHosts`): SNI picks the server by it. */
export interface ServerLookup<S> {
  readonly defaultServer: S;
  find(name: string): { readonly server: S };
}

/** The TLS side of one address:port, built once per configuration generation. */
export class TlsTermination<S> {
  readonly #hosts: ServerLookup<S>;
  readonly #tlsOf: (server: S) => ServerTls;
  readonly #default: SecureContext;
  /** How many certificates {@link #default} holds. */
  readonly #defaultCertificates: number;
  readonly #defaultVerify: ClientVerifySettings;
  readonly #defaultGroups: GroupSettings;
  readonly #defaultContextFor: ServerTls['contextFor'];
  readonly #alpn: string[];
  /** Whether a server offers h2: ALPN then answers by the server the SNI names (ngx_http_ssl_alpn_select()). */
  readonly #http2For: ((server: S) => boolean) | undefined;
  readonly #events: EventEmitter;
  /** {@link #events} without the 'OCSPRequest' listener, for a handshake nothing can be stapled to. */
  readonly #quietEvents: EventEmitter;
  readonly #runtime: TlsRuntime;
  /** The default server's TLS, which a server without certificates of its own handshakes with. */
  readonly #fallback: ServerTls;
  readonly #maxSendFragment: number;
  /** The staples of the servers handshakes reached, by the hex of their certificate's DER. */
  readonly #staples = new Map<string, CertificateStaple>();
  readonly #log: ErrorLog | undefined;
  /** The pre_shared_key identity of each handshake in progress, by its legacy_session_id (hex). */
  readonly #pskOf = new Map<string, Buffer>();
  /** What each handshake in progress began with and was handed, for the staple of its certificate. */
  readonly #handshakes = new WeakMap<TLSSocket, HandshakeCertificates>();
  /** The ring of servers with `ssl_session_tickets off`: it issues and resumes no ticket. */
  readonly #noTickets = new TicketKeyRing();

  /**
   * `http2`: `listen ... http2` or the default server's `http2 on` offer `h2` before `http/1.1`.
   * `alpn` replaces that list (stream offers none: an empty list answers no ALPN at all).
   * `runtime` holds the stored certificates, the ticket key and the shared sessions it serves with.
   * `log` gets what OCSP stapling logs (the responder's errors).
   */
  constructor(hosts: ServerLookup<S>, tlsOf: (server: S) => ServerTls, runtime: TlsRuntime, http2: boolean | ((server: S) => boolean), alpn?: readonly string[], log?: ErrorLog) {
    this.#hosts = hosts;
    this.#tlsOf = tlsOf;
    this.#runtime = runtime;
    const fallback = tlsOf(hosts.defaultServer);
    this.#fallback = fallback;
    // A default with variable certificates starts handshakes on its settings' context, as nginx
    // on its SSL_CTX: the master's ticket key and its session id context resume across addresses.
    const own = fallback.rejectHandshake ? undefined : (fallback.context ?? fallback.settingsContext);
    // The connection's SSL comes from this context: no renegotiation, as ngx_ssl_create_connection() sets.
    this.#default = this.#follow(fallback, own ?? createSecureContext({ secureOptions: constants.SSL_OP_NO_RENEGOTIATION }));
    this.#defaultCertificates = own === fallback.context ? fallback.certificates : 0;
    this.#defaultVerify = fallback.verify;
    this.#defaultGroups = fallback.groups;
    this.#defaultContextFor = fallback.contextFor;
    this.#alpn = alpn !== undefined ? [...alpn] : http2 === true ? ['h2', 'http/1.1'] : ['http/1.1'];
    this.#http2For = typeof http2 === 'function' && alpn === undefined ? http2 : undefined;
    // The ClientHello's session ID is looked up before the SNI callback picks a server, so the
    // default server's ssl_session_cache is the address's; nginx's lookup runs on the default
    // server's SSL_CTX too. OpenSSL refuses a session of another id context (client verification).
    const sessions = fallback.sessionCache?.eventsFor(runtime.sharedSessions);
    this.#events = this.#eventsFor(sessions, true);
    this.#quietEvents = this.#eventsFor(sessions, false);
    // ngx_http_ssl_handshake(): the default server's ssl_buffer_size is the connection's.
    this.#maxSendFragment = fallback.maxSendFragment;
    this.#log = log;
    this.#addStaples(fallback);
  }

  /**
   * The `server` _tls_wrap reads: the session events of `sessions`, and 'OCSPRequest', which Node
   * emits with the certificate of the context the handshake ended on (`_sharedCreds` when SNI
   * chose none), as nginx's status callback looks the staple up by SSL_get_certificate().
   * Without `ocsp`, no 'OCSPRequest' listener: Node then leaves the certificate callback off.
   */
  #eventsFor(sessions: EventEmitter | undefined, ocsp: boolean): EventEmitter {
    const events = new EventEmitter();
    if (sessions !== undefined) {
      events.on('newSession', (...args: unknown[]) => sessions.emit('newSession', ...args));
      events.on('resumeSession', (id: Buffer, done: unknown) => {
        // Node looks a session up by the ClientHello's legacy_session_id only (its ClientHelloParser);
        // a TLS 1.3 client names its session in pre_shared_key, where a stateful ticket is the id the
        // session was stored under. OpenSSL takes whatever session the lookup loaded.
        const key = id.toString('hex');
        const psk = this.#pskOf.get(key);
        this.#pskOf.delete(key);
        sessions.emit('resumeSession', psk ?? id, done);
      });
    }
    // _tls_wrap enables its certificate callback only when the server listens for 'OCSPRequest';
    // each handshake's own server ({@link #serverOf}) answers it, knowing the connection.
    // Node passes null when the context of the handshake holds no certificate yet (a variable
    // certificate chosen later, `$acme_certificate` without SNI): nothing to staple.
    if (ocsp) {
      events.on('OCSPRequest', (certificate: Buffer | null, _issuer: Buffer | null, done: OcspDone) => {
        done(null, certificate === null ? undefined : this.#staples.get(certificate.toString('hex'))?.respond(this.#log));
      });
    }
    Object.assign(events, { _sharedCreds: this.#default });
    return events;
  }

  /**
   * The `server` of one handshake: the termination's events, but 'OCSPRequest', which Node emits
   * with the context's certificate and no connection, is answered for `socket`.
   */
  #serverOf(socket: () => TLSSocket): Server {
    const events = this.#events;
    const emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event !== 'OCSPRequest') return events.emit(event, ...args);
      this.#staple(socket(), args[0] as Buffer | null, args[2] as OcspDone);
      return true;
    };
    return Object.create(events, { emit: { value: emit } }) as Server;
  }

  /**
   * `ngx_ssl_certificate_status_callback()`: the staple of the certificate the handshake sends.
   * When the SSL holds several, OpenSSL has not chosen yet: it is asked (certificate-choice.ts),
   * and without the whole ClientHello to ask with nothing is stapled rather than another's.
   */
  #staple(socket: TLSSocket, certificate: Buffer | null, done: OcspDone): void {
    const handshake = this.#handshakes.get(socket);
    if (handshake === undefined || !holdsSeveral(handshake)) {
      // null: the handshake's context holds no certificate (see the 'OCSPRequest' listener).
      done(null, certificate === null ? undefined : this.#staples.get(certificate.toString('hex'))?.respond(this.#log));
      return;
    }
    if (this.#staples.size === 0 || handshake.hello === undefined) {
      done(null);
      return;
    }
    const abort = new AbortController();
    const closed = (): void => abort.abort();
    socket.once('close', closed);
    void chosenCertificate(handshake.hello, handshake.initial, handshake.sni, abort.signal).then((chosen) => {
      socket.off('close', closed);
      if (socket.destroyed) return;
      done(null, chosen === undefined ? undefined : this.#staples.get(chosen.toString('hex'))?.respond(this.#log));
    });
  }

  #addStaples(tls: ServerTls): void {
    for (const staple of tls.staples) {
      const key = staple.certificate.toString('hex');
      if (!this.#staples.has(key)) this.#staples.set(key, staple);
    }
  }

  /**
   * A context of `tls` as a handshake gets it: with the server's session ticket keys. Every context
   * a handshake starts or ends on takes the ticket callback: OpenSSL calls the one of the context
   * the handshake started on, and Node answers it with the JS function of the context it is on now
   * (tls/ticket-keys.ts), which one without the function would fail.
   */
  #follow(tls: { readonly ticketKeys: TicketKeySource }, context: SecureContext): SecureContext {
    useTicketKeyRing(context, this.#ringOf(tls.ticketKeys));
    return context;
  }

  #ringOf(source: TicketKeySource): TicketKeyRing {
    switch (source.from) {
      case 'none':
        return this.#noTickets;
      case 'files':
        return source.ring;
      case 'zone':
        return this.#runtime.ticketKeys.zone(source.zone, source.timeoutMs);
      case 'master':
        return this.#runtime.ticketKeys.master;
    }
  }

  /**
   * Starts the server side of a handshake on `socket`; bytes already read must be back in it, and
   * `first` is what they were (the ClientHello that `$ssl_ciphers` and `$ssl_curves` read).
   * Undefined when ssl_reject_handshake refused it: the alert is sent and `socket` is ending.
   */
  wrap(socket: Socket, first?: Buffer): TLSSocket | undefined {
    const hello = first === undefined ? undefined : parseClientHello(first);
    if (hello !== undefined && this.#rejects(hello.serverName)) {
      // ngx_http_ssl_servername(): ssl_reject_handshake answers the unrecognized_name alert. Node's
      // SNICallback can only drop the connection (or, without SNI, fail with handshake_failure),
      // so the alert record is written here, before any TLS state exists: TLS 1.0 record version,
      // as OpenSSL's first records; fatal (2), unrecognized_name (112).
      socket.end(Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70]));
      socket.resume();
      return undefined;
    }
    const initial = this.#initialContext(hello?.serverName);
    // Node runs a certificate callback, which pauses the handshake for a round trip through
    // JavaScript, when the socket has an SNICallback or its server an 'OCSPRequest' listener. A
    // handshake whose server the ClientHello already settled ({@link #settled}), with no staple
    // to look up, goes without it: what the callback would do leaves the SSL as it is.
    const settled = hello !== undefined && this.#settled(hello.serverName);
    const ocsp = !settled || this.#staples.size > 0;
    const secure: TLSSocket = new TLSSocket(socket, {
      isServer: true,
      secureContext: initial.context,
      ...(this.#http2For !== undefined
        ? { ALPNCallback: ({ servername, protocols }: { servername: string | false; protocols: string[] }) => this.#selectProtocol(servername, protocols) }
        : this.#alpn.length === 0
          ? {}
          : { ALPNProtocols: this.#alpn }),
      // nginx answers a bad client certificate at the HTTP level (495, 496), after the handshake.
      requestCert: this.#defaultVerify.mode !== 'off',
      rejectUnauthorized: false,
      ...(settled ? {} : { SNICallback: (servername: string, done: (err: Error | null, context?: SecureContext) => void) => this.#select(secure, servername, done) }),
      // Node types `server` as a net.Server; _tls_wrap only emits the session and OCSP events on it.
      server: ocsp ? this.#serverOf(() => secure) : (this.#quietEvents as Server),
    });
    if (ocsp) this.#handshakes.set(secure, { hello: hello === undefined ? undefined : first, initial: initial.context, initialCount: initial.certificates, sni: undefined });
    handshakeVerify.set(secure, this.#defaultVerify);
    handshakeGroups.set(secure, this.#defaultGroups);
    if (hello !== undefined) {
      handshakeHello.set(secure, hello);
      const psk = hello.pskIdentities[0];
      if (psk !== undefined && hello.sessionId.length > 0) {
        const key = hello.sessionId.toString('hex');
        this.#pskOf.set(key, psk);
        secure.once('close', () => this.#pskOf.delete(key));
      }
    }
    secure.setMaxSendFragment(this.#maxSendFragment);
    return secure;
  }

  /**
   * The context a handshake starts on: the default's, or the SNI server's when its ssl_protocols
   * differ. OpenSSL picks the version before Node's SNICallback runs, so a context chosen there
   * cannot change it; nginx 1.29.2 switches contexts in the ClientHello callback for this. The
   * name is read from the ClientHello here, before the TLS socket exists.
   */
  #initialContext(servername: string | undefined): { readonly context: SecureContext; readonly certificates: number } {
    const fallback = { context: this.#default, certificates: this.#defaultCertificates };
    if (servername === undefined || servername === '') {
      // A default server with `ssl_certificate $acme_certificate` answers without SNI too, as nginx's certificate callback does.
      const stored = this.#fallback.storedContext?.();
      return stored === undefined ? fallback : { context: this.#follow(this.#fallback, stored), certificates: 1 };
    }
    const name = servername.toLowerCase();
    const tls = this.#tlsOf(this.#hosts.find(name).server);
    if (tls.context === undefined || tls.rejectHandshake || tls.protocols === this.#fallback.protocols) return fallback;
    if (this.#runtime.certificates.lookup(name) !== undefined) return fallback;
    return { context: this.#follow(tls, tls.context), certificates: tls.certificates };
  }

  /**
   * Whether {@link #select} would hand a handshake with `servername` the context it starts on,
   * at once, with the default server's verification and groups (what wrap() set): no name (Node
   * calls no SNICallback then), or a name whose server handshakes with the default's certificates
   * (the default itself, or a server without certificates of its own), no certificate of the store
   * for the name, no variable certificates, no ssl_reject_handshake. Asked at each ClientHello, as
   * the store changes. The selected server's staples are known from here on, as after #select.
   */
  #settled(servername: string | undefined): boolean {
    if (servername === undefined || servername === '') return true;
    const name = servername.toLowerCase();
    const tls = this.#tlsOf(this.#hosts.find(name).server);
    this.#addStaples(tls);
    if (tls.rejectHandshake) return false;
    if (this.#runtime.certificates.lookup(name) !== undefined && (tls.contextFor ?? this.#defaultContextFor) !== undefined) return false;
    const own = tls.context === undefined && tls.select === undefined ? this.#fallback : tls;
    return own === this.#fallback && own.select === undefined && !own.rejectHandshake;
  }

  /**
   * Whether the handshake of a ClientHello with `servername` is refused: the server the name
   * selects (the default without one) has ssl_reject_handshake on, and the store has no
   * certificate for the name that it could answer with (as {@link #select} decides).
   */
  #rejects(servername: string | undefined): boolean {
    if (servername === undefined || servername === '') return this.#tlsOf(this.#hosts.defaultServer).rejectHandshake;
    const name = servername.toLowerCase();
    const tls = this.#tlsOf(this.#hosts.find(name).server);
    if (!tls.rejectHandshake) return false;
    return this.#runtime.certificates.lookup(name) === undefined || (tls.contextFor ?? this.#defaultContextFor) === undefined;
  }

  /**
   * ngx_http_ssl_alpn_select(): h2 first when the server the SNI named (OpenSSL runs the servername
   * callback before ALPN), or the default one, has HTTP/2 on; http/1.1 otherwise. Undefined, when
   * the client offers neither, ends the handshake with a no_application_protocol alert.
   */
  #selectProtocol(servername: string | false | undefined, protocols: readonly string[]): string | undefined {
    // Node passes false when the client sent no SNI.
    const server = typeof servername !== 'string' || servername === '' ? this.#hosts.defaultServer : this.#hosts.find(servername.toLowerCase()).server;
    const offer = this.#http2For?.(server) === true ? ['h2', 'http/1.1'] : ['http/1.1'];
    return offer.find((protocol) => protocols.includes(protocol));
  }

  /**
   * `ngx_http_ssl_servername()`: the server the name selects, its context, or the default's. A
   * certificate of the store for the name comes first, with the selected server's settings.
   */
  #select(socket: TLSSocket, servername: string, done: (err: Error | null, context?: SecureContext) => void): void {
    const name = servername.toLowerCase();
    const { server } = this.#hosts.find(name);
    const tls = this.#tlsOf(server);
    this.#addStaples(tls);
    const hand = (context: SecureContext): void => {
      const handshake = this.#handshakes.get(socket);
      if (handshake !== undefined) handshake.sni = context;
      done(null, context);
    };
    const stored = this.#runtime.certificates.lookup(name);
    const contextFor = tls.contextFor ?? this.#defaultContextFor;
    if (stored !== undefined && contextFor !== undefined) {
      let context: SecureContext | undefined;
      try {
        context = this.#follow(tls.contextFor === undefined ? this.#fallback : tls, this.#runtime.certificates.contextOf(stored, contextFor));
      } catch {
        // The master checked the pair; settings it cannot meet (ciphers) leave the server's own.
      }
      if (context !== undefined) {
        if (tls.contextFor === undefined) setVerifyMode(socket, this.#defaultVerify, this.#defaultGroups);
        else setVerifyMode(socket, tls.verify, tls.groups);
        hand(context);
        return;
      }
    }
    if (tls.rejectHandshake) {
      done(new Error(`TLS handshake rejected for server name "${servername}"`));
      return;
    }
    // A server without certificates handshakes with the default's context and its settings: the
    // default's certificates with variables too (nginx keeps the default server's SSL_CTX, whose
    // certificate callback loads them).
    const own = tls.context === undefined && tls.select === undefined ? this.#fallback : tls;
    if (own === this.#fallback) setVerifyMode(socket, this.#defaultVerify, this.#defaultGroups);
    else setVerifyMode(socket, tls.verify, tls.groups);
    // ssl_certificate with variables: loaded for this handshake (variable-certificates.ts).
    const select = own.select;
    if (select !== undefined && !own.rejectHandshake) {
      select(socket, servername).then((context) => hand(this.#follow(own, context)), (err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
      return;
    }
    hand(tls.context === undefined ? this.#default : this.#follow(tls, tls.context));
  }
}
