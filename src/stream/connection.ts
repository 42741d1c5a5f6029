/**
 * One stream connection through nginx's phases (`ngx_stream_core_run_phases()`): the PROXY
 * protocol header of a `listen ... proxy_protocol` address, post-accept (realip), preaccess
 * (set, limit_conn), access (allow, deny), ssl (termination), preread (ssl_preread), content
 * (proxy_pass, return or pass), log.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { channels } from '../core/diagnostics.js';
import type { ErrorLog } from '../core/log.js';
import { logRequest } from '../http/access-log.js';
import { isTrusted } from '../http/realip.js';
import { accessDenied, runSets } from './phases.js';
import { validateHost } from '../http/uri.js';
import { handshakeVerifyOf, tlsInfoOf } from '../tls/sni.js';
import { clientVerdict } from '../tls/client-verify.js';
import { clientHelloIncomplete } from '../tls/client-hello.js';
import { handshakeFailureReason } from '../tls/handshake-reason.js';
import type { CompiledStreamServer, StreamRoute } from './generation.js';
import { SessionConnLimits } from './limit-conn.js';
import { proxySession } from './proxy.js';
import { brokenHeaderText, readProxyProtocol } from '../core/proxy-protocol.js';
import { clientText, StreamSession } from './session.js';
import { ClientHelloReader } from './ssl-preread.js';
import { inheritLocalAddress, setLocalAddress } from '../core/local-address.js';
import { MAX_PASSES, type PassedConnection, type PassTo } from './pass.js';

/** A session in progress, as the runtime tracks it for drains and fast shutdowns. */
export class StreamConnection {
  readonly session: StreamSession;
  /** The server the session is in: the address's default, until SNI or ssl_preread's name chooses another. */
  #server: CompiledStreamServer;
  readonly #route: StreamRoute;
  #log: ErrorLog;
  #socket: Socket;
  /** Bytes read before the content phase, passed on first. */
  #pending: Buffer[] = [];
  readonly #limits = new SessionConnLimits();
  #done = false;
  /** Ends the upstream attempt as the worker's drain cut it (set once proxy_pass runs). */
  #stopProxy: (() => void) | undefined;
  readonly #closeListeners: (() => void)[] = [];
  /** The connection's slot and stub_status entry, which a `pass` hands on with it, and where to. */
  readonly #passed: PassedConnection;
  readonly #passTo: PassTo;

  constructor(socket: Socket, route: StreamRoute, log: ErrorLog, passed: PassedConnection, passTo: PassTo) {
    this.#passed = passed;
    this.#passTo = passTo;
    this.#socket = socket;
    this.#server = route.server;
    this.#route = route;
    this.#log = log;
    this.session = new StreamSession(socket);
    this.session.serverName = route.server.serverName;
    // Each direction is closed on its own: the client's FIN is passed upstream, the answer still flows back.
    socket.allowHalfOpen = true;
    socket.on('error', () => undefined);
    socket.pause();
  }

  /** Runs the phases; the session ends by itself. */
  start(): void {
    // ngx_stream_init_connection()'s [info] line, in the default server's error_log.
    this.#log.info(`client ${clientText(this.session.peerAddress, this.session.peerPort)} connected to ${this.#server.addrText}`, this.session.id);
    void this.#run().catch((err: unknown) => {
      this.#log.alert(`stream session failed: ${err instanceof Error ? err.message : String(err)}`);
      this.#finish(500);
    });
  }

  /** `client: 127.0.0.1, server: 0.0.0.0:12345`, as nginx ends stream messages. */
  get #logContext(): string {
    return `client: ${this.session.remoteAddress}, server: ${this.#server.addrText}`;
  }

  async #run(): Promise<void> {
    const server = this.#server;
    if (this.#route.proxyProtocol && !(await this.#readProxyProtocol())) return this.#finish(400);
    // ngx_stream_realip_handler(): the PROXY header's source replaces a trusted peer's address.
    const header = this.session.proxyProtocol;
    if (header !== undefined && server.realIpFrom.length > 0 && isTrusted(this.session.peerAddress, server.realIpFrom)) {
      this.session.remoteAddress = header.sourceAddress;
      this.session.remotePort = String(header.sourcePort);
    }
    // The preaccess phase: ngx_stream_set_module's handler runs before limit_conn's (phase handlers run last-registered first).
    runSets(server, this.session);
    if (server.limitConn.length > 0 && !(await this.#limits.acquire(server, this.session, this.#log, this.#logContext))) return this.#finish(503);
    if (this.#done) return;
    if (accessDenied(server, this.session, this.#log, this.#logContext)) return this.#finish(403);
    if (this.#route.tls !== undefined && !(await this.#handshake())) return this.#finish(500);
    if (this.#server.sslPreread && !(await this.#preread())) return this.#finish(400);
    if (this.#done) return;
    return this.#content(this.#server);
  }

  /** The content phase, in the server the session ended up in. */
  #content(server: CompiledStreamServer): void {
    if (server.returnValue !== undefined) {
      const text = Buffer.from(server.returnValue(this.session), 'latin1');
      this.session.bytesSent += text.length;
      // The end comes a turn after the write: a TLS 1.3 socket ended together with its data (or
      // right after the write's callback) sends the FIN before the close_notify, which it then
      // never sends, and OpenSSL clients take the session for truncated (unexpected EOF), and do
      // not keep it. nginx's ngx_ssl_shutdown() sends close_notify.
      this.#socket.write(text);
      setImmediate(() => this.#socket.end(() => this.#finish(200)));
      return;
    }
    if (server.pass !== undefined) return this.#pass(server);
    const proxy = server.proxy;
    if (proxy === undefined) return this.#finish(500);
    this.#stopProxy = proxySession(this.session, { socket: this.#socket, pending: this.#pending, logContext: this.#logContext }, proxy, this.#log, () => this.#finish(this.session.status));
  }

  /**
   * `ngx_stream_pass_handler()`: the connection goes to the listening socket that serves the
   * address, and this session ends without a log line. nginx prereads a plain connection with
   * MSG_PEEK, so what ssl_preread read is put back on the socket; it cannot peek into TLS, so a
   * terminated session that read data is refused.
   */
  #pass(server: CompiledStreamServer): void {
    const context = `while passing connection to port, ${this.#logContext}`;
    if (this.#pending.length > 0 && this.session.tls !== undefined) {
      this.#log.error(`cannot pass connection with preread data ${context}`, this.session.id);
      return this.#finish(500);
    }
    const address = server.pass?.(this.session);
    if (address === undefined || 'error' in address) {
      this.#log.error(`${address?.error ?? 'no pass'} ${context}`, this.session.id);
      return this.#finish(500);
    }
    if (this.#passed.passes >= MAX_PASSES) {
      this.#log.error(`stream pass cycle ${context}`, this.session.id);
      return this.#finish(500);
    }
    const socket = this.#socket;
    if (this.#pending.length > 0) socket.unshift(Buffer.concat(this.#pending));
    // nginx sets c->local_sockaddr to the address passed to: $server_addr, $server_port and the
    // choice among a wildcard socket's addresses see it.
    if (address.family !== 'unix') setLocalAddress(socket, address.address, address.port);
    this.#pending = [];
    if (!this.#passTo(address, socket, { ...this.#passed, passes: this.#passed.passes + 1 })) {
      this.#log.error(`port not found for "${address.name}" ${context}`, this.session.id);
      return this.#finish(200);
    }
    // The phases left the socket paused; its new owner reads it from here (the bytes put back first).
    socket.resume();
    // Handed on: the connection's limit_conn counts stay until it closes, as they do in nginx (the connection's pool).
    this.#done = true;
    socket.once('close', () => this.#limits.release());
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Reads bytes until `decide` says enough, the client closes, or `timeoutMs` passes; resolves how it ended. */
  #read(timeoutMs: number, decide: (data: Buffer) => boolean): Promise<'done' | 'timeout' | 'closed'> {
    const socket = this.#socket;
    return new Promise((resolve) => {
      const timer = timeoutMs > 0 ? setTimeout(() => end('timeout'), timeoutMs) : undefined;
      const end = (how: 'done' | 'timeout' | 'closed'): void => {
        if (timer !== undefined) clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        socket.pause();
        resolve(how);
      };
      const onData = (chunk: Buffer): void => {
        this.#pending.push(chunk);
        if (decide(Buffer.concat(this.#pending))) end('done');
      };
      const onEnd = (): void => end('closed');
      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('close', onEnd);
      socket.resume();
    });
  }

  /** `ngx_stream_proxy_protocol_handler()`: a broken or late header closes the connection. */
  async #readProxyProtocol(): Promise<boolean> {
    let header: ReturnType<typeof readProxyProtocol> = { kind: 'again' };
    const how = await this.#read(this.#server.proxyProtocolTimeoutMs, (data) => (header = readProxyProtocol(data)).kind !== 'again');
    if (how === 'timeout') this.#log.error(`client timed out (110: Connection timed out) while reading PROXY protocol, ${this.#logContext}`, this.session.id);
    if (how !== 'done') return false;
    const result = header as ReturnType<typeof readProxyProtocol>;
    if (result.kind !== 'header') {
      this.#log.error(`broken header: "${brokenHeaderText(Buffer.concat(this.#pending))}" while reading PROXY protocol, ${this.#logContext}`, this.session.id);
      return false;
    }
    this.session.proxyProtocol = result.addresses;
    const rest = Buffer.concat(this.#pending).subarray(result.length);
    this.#pending = rest.length > 0 ? [rest] : [];
    return true;
  }

  /** The ssl phase: the handshake, then the session reads and writes the decrypted stream. */
  async #handshake(): Promise<boolean> {
    const tls = this.#route.tls;
    if (tls === undefined) return true;
    const raw = this.#socket;
    if (this.#pending.length === 0 || clientHelloIncomplete(Buffer.concat(this.#pending))) {
      // The first bytes are the ClientHello, read whole here for $ssl_ciphers and $ssl_curves
      // (client-hello.ts) and the staple of the certificate it gets (certificate-choice.ts).
      const how = await this.#read(tls.handshakeTimeoutMs, (data) => !clientHelloIncomplete(data));
      if (how === 'timeout') this.#log.info(`client timed out (110: Connection timed out) while SSL handshaking, ${this.#logContext}`, this.session.id);
      // A FIN in the middle of the ClientHello: what SSL_do_handshake() would have seen.
      if (how === 'closed' && this.#pending.length > 0) this.#log.info(`peer closed connection in SSL handshake while SSL handshaking, ${this.#logContext}`, this.session.id);
      if (how !== 'done') return false;
    }
    const first = this.#pending.length > 0 ? Buffer.concat(this.#pending) : undefined;
    if (first !== undefined) raw.unshift(first);
    this.#pending = [];
    const secure: TLSSocket | undefined = tls.termination.wrap(raw, first);
    if (secure === undefined) {
      this.#log.info(`SSL_do_handshake() failed (SSL: error:0A0000EA:SSL routines::callback failed) while SSL handshaking, ${this.#logContext}`, this.session.id);
      channels.tlsHandshake.publishLazy(() => ({ module: 'stream', ok: false, resumed: false, reason: 'rejected' }));
      // The alert is being written: the session ends once it was (a destroy now could drop it).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, tls.handshakeTimeoutMs);
        raw.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return false;
    }
    // A connection passed here keeps the address it was passed to.
    inheritLocalAddress(raw, secure);
    // An ssl_certificate with variables is evaluated against this session (streamTlsOf()).
    tls.sessions.set(secure, this.session);
    secure.allowHalfOpen = true;
    secure.on('error', () => undefined);
    // How the handshake ended, published once (`hitless:tls:handshake`, the TLS metrics).
    let published = false;
    const ended = (ok: boolean, reason: string): void => {
      if (published) return;
      published = true;
      channels.tlsHandshake.publishLazy(() => ({ module: 'stream', ok, resumed: ok && secure.isSessionReused(), reason }));
    };
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#log.info(`client timed out (110: Connection timed out) while SSL handshaking, ${this.#logContext}`, this.session.id);
        ended(false, 'timeout');
        resolve(false);
      }, tls.handshakeTimeoutMs);
      secure.once('secure', () => {
        clearTimeout(timer);
        secure.off('end', onEnd);
        ended(true, '');
        // Node emits 'secure' from OpenSSL's SSL_CB_HANDSHAKE_DONE, which a TLS 1.3 server reaches
        // before it writes its NewSessionTickets, in the same native read: data the session writes
        // now (a `return`, an upstream's banner) would go out before the tickets, and a client that
        // reads once and closes never sees them. nginx's SSL_do_handshake() returns after them, so
        // the session goes on once that read is over.
        setImmediate(() => resolve(true));
      });
      const failed = (err?: Error): void => {
        clearTimeout(timer);
        if (err !== undefined) this.#log.info(`SSL_do_handshake() failed (SSL: ${err.message}) while SSL handshaking, ${this.#logContext}`, this.session.id);
        ended(false, err === undefined ? 'closed' : handshakeFailureReason(err));
        resolve(false);
      };
      secure.once('error', failed);
      secure.once('close', () => failed());
      // Not raw.resume(): the TLS socket reads the bytes put back on it, and a flowing raw socket
      // would emit them as its own 'data' instead (the handshake then waited for them forever).
      // With allowHalfOpen, a FIN before the handshake ends is an 'end' and no 'close': without
      // this the session waited for ssl_handshake_timeout (nginx: SSL_do_handshake() sees the EOF).
      const onEnd = (): void => {
        this.#log.info(`peer closed connection in SSL handshake while SSL handshaking, ${this.#logContext}`, this.session.id);
        failed();
      };
      secure.once('end', onEnd);
    });
    this.#socket = secure;
    if (!ok) return false;
    secure.pause();
    this.session.tls = tlsInfoOf(secure);
    // ngx_stream_ssl_handler(): stream has no 495 or 496 to answer, so a certificate that did not
    // verify (unless optional_no_ca excuses it), or none with `on`, ends the session.
    const verify = handshakeVerifyOf(secure);
    const verdict = verify === undefined ? undefined : clientVerdict(verify, this.session.tls.client);
    if (verdict !== undefined) {
      const reason = verdict.status === 495 ? `client SSL certificate verify error: (${verdict.error.number}:${verdict.error.reason})` : 'client sent no required SSL certificate';
      this.#log.info(`${reason} while SSL handshaking, ${this.#logContext}`, this.session.id);
      return false;
    }
    // ngx_stream_ssl_servername(): the SNI name chose the server the handshake was made in.
    this.#chooseServer(typeof secure.servername === 'string' ? secure.servername : '');
    return true;
  }

  /**
   * `ngx_stream_find_virtual_server()` for a name (SNI, or ssl_preread's): the session goes on in
   * the server whose server_name matches (a regex's captures become the session's), with that
   * server's settings, error_log and access_log. An empty or invalid name changes nothing.
   */
  #chooseServer(name: string): void {
    const find = this.#route.find;
    if (find === undefined || name === '') return;
    const host = validateHost(name)?.host;
    if (host === undefined) return;
    const { server, match } = find(host);
    if (match !== undefined) this.session.captures = match;
    if (server === this.#server) return;
    this.#server = server;
    this.#log = server.errorLog;
    this.session.serverName = server.serverName;
  }

  /**
   * The preread phase (`ngx_stream_core_preread_phase()`): up to preread_buffer_size bytes, within
   * preread_timeout. A full buffer is a bad request (400); a timeout or the client's FIN go on to
   * the content phase with what was read, and so does anything that is not a ClientHello.
   */
  async #preread(): Promise<boolean> {
    const reader = new ClientHelloReader();
    const limit = this.#server.prereadBufferSize;
    let full = false;
    for (const chunk of this.#pending) reader.feed(chunk);
    if (reader.result === 'again') {
      let seen = this.#pending.reduce((sum, chunk) => sum + chunk.length, 0);
      await this.#read(this.#server.prereadTimeoutMs, (data) => {
        // nginx reads into a buffer of preread_buffer_size bytes: the reader never sees more.
        const fresh = data.subarray(seen, limit);
        seen = Math.min(data.length, limit);
        if (reader.feed(fresh) !== 'again') return true;
        full = seen >= limit;
        return full;
      });
    }
    if (full && reader.result === 'again') {
      this.#log.error(`preread buffer full while prereading client data, ${this.#logContext}`, this.session.id);
      return false;
    }
    if (reader.result !== 'declined') this.session.preread = reader.values;
    // ngx_stream_ssl_preread_servername(): the ClientHello's name chooses the server.
    this.#chooseServer(this.session.preread?.serverName ?? '');
    return true;
  }

  /** Ends the session: closes the client, gives back the limit_conn counts, writes the log line. */
  #finish(status: StreamSession['status']): void {
    if (this.#done) return;
    this.#done = true;
    this.session.status = status;
    this.session.endedAt = performance.now();
    this.#limits.release();
    this.#socket.destroy();
    logRequest(this.#server.loggers, this.session);
    channels.requestFinish.publishLazy(() => ({ protocol: 'tcp', request: this.session }));
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Calls `listener` once the session is over. */
  onClose(listener: () => void): void {
    if (this.#done) listener();
    else this.#closeListeners.push(listener);
  }

  /** Ends the session at once (fast shutdown, worker_shutdown_timeout). */
  destroy(): void {
    this.#stopProxy?.();
    this.#socket.destroy();
    this.#finish(this.session.status);
  }
}
