/**
 * The ClientHello reader of nginx's `ngx_stream_ssl_preread_module`: it looks at the bytes a
 * client sent first, without consuming them, for the server name (SNI), the ALPN protocols and
 * the version, so that `proxy_pass $ssl_preread_server_name` can route TLS it never terminates.
 *
 * The records are read as `ngx_stream_ssl_preread_handler()` does (a whole record at a time, a
 * ClientHello may span several), and the handshake message as `ngx_stream_ssl_preread_parse_record()`
 * does: a state machine that keeps its place between records and between TCP segments, so a
 * ClientHello split byte by byte gives the same answer as one sent whole.
 */

/** What the reader has made of the bytes so far. */
export type PrereadResult =
  /** More bytes are needed. */
  | 'again'
  /** The ClientHello was read (or an SSLv2 one recognised): the variables are known. */
  | 'ok'
  /** Not TLS, or a malformed ClientHello: the variables are not found (empty), as in nginx. */
  | 'declined';

/** The values `$ssl_preread_*` read. */
export interface PrereadValues {
  readonly serverName: string;
  /** The ALPN protocols, comma-separated, in the client's order. */
  readonly alpnProtocols: string;
  /** `TLSv1.3`, `TLSv1.2`, ... as SSL_get_version() names them, or empty when unknown. */
  readonly protocol: string;
}

/** Where the bytes being collected go: a scratch field, the version, the host, the ALPN list, or nowhere. */
type Destination = 'scratch' | 'version' | 'host' | 'alpn' | undefined;

const enum State {
  Start,
  Header,
  Version,
  Random,
  SessionIdLength,
  SessionId,
  CipherSuitesLength,
  CipherSuites,
  CompressionLength,
  Compression,
  Extension,
  ExtensionHeader,
  SniLength,
  SniHostHead,
  SniHost,
  AlpnLength,
  AlpnProtocolLength,
  AlpnProtocolData,
  SupportedVersionsLength,
}

/** SSL_get_version() names, by the two version bytes. */
function versionName(major: number, minor: number): string {
  if (major === 0 && minor === 2) return 'SSLv2';
  if (major !== 3) return '';
  return ['SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'][minor] ?? '';
}

/** Reads one connection's ClientHello from the bytes given to {@link feed}, in order. */
export class ClientHelloReader {
  #buffer: Buffer = Buffer.alloc(0);
  /** Offset of the next record in `#buffer`. */
  #pos = 0;
  #result: PrereadResult = 'again';
  // The handshake parser's state, kept between records (nginx's ctx->state, size, left, ext, dst).
  #state = State.Start;
  #size = 0;
  #left = 0;
  #ext = 0;
  #dst: Destination;
  #scratch: number[] = [];
  #version: number[] = [];
  #host: number[] | undefined;
  #alpn: number[] | undefined;

  /** The outcome so far. */
  get result(): PrereadResult {
    return this.#result;
  }

  /** The values once {@link result} is `ok`; undefined when `declined` (nginx's "not found"). */
  get values(): PrereadValues | undefined {
    if (this.#result === 'declined') return undefined;
    return {
      serverName: Buffer.from(this.#host ?? []).toString('latin1'),
      alpnProtocols: Buffer.from(this.#alpn ?? []).toString('latin1'),
      protocol: versionName(this.#version[0] ?? -1, this.#version[1] ?? -1),
    };
  }

  /** Adds the bytes the client sent next; returns the outcome so far. */
  feed(chunk: Buffer): PrereadResult {
    if (this.#result !== 'again') return this.#result;
    this.#buffer = this.#buffer.length === this.#pos ? chunk : Buffer.concat([this.#buffer.subarray(this.#pos), chunk]);
    this.#pos = 0;
    const buf = this.#buffer;
    while (buf.length - this.#pos >= 5) {
      const p = this.#pos;
      const b0 = buf[p] as number;
      if ((b0 & 0x80) !== 0 && buf[p + 2] === 1 && (buf[p + 3] === 0 || buf[p + 3] === 3)) {
        // An SSLv2-compatible ClientHello: only the version is known.
        this.#version = [buf[p + 3] as number, buf[p + 4] as number];
        return (this.#result = 'ok');
      }
      if (b0 !== 0x16 || buf[p + 1] !== 3) return this.#decline();
      const length = ((buf[p + 3] as number) << 8) + (buf[p + 4] as number);
      // A whole record is read before it is parsed.
      if (buf.length - p < length + 5) break;
      const rc = this.#parseRecord(buf, p + 5, p + 5 + length);
      if (rc !== 'again') {
        if (rc === 'declined') return this.#decline();
        return (this.#result = rc);
      }
      this.#pos = p + 5 + length;
    }
    return 'again';
  }

  #decline(): PrereadResult {
    this.#host = undefined;
    this.#alpn = undefined;
    this.#version = [];
    return (this.#result = 'declined');
  }

  #parseRecord(buf: Buffer, start: number, end: number): PrereadResult {
    let pos = start;
    for (;;) {
      const n = Math.min(end - pos, this.#size);
      if (this.#dst !== undefined) {
        const target = this.#dst === 'scratch' ? this.#scratch : this.#dst === 'version' ? this.#version : this.#dst === 'host' ? this.#host : this.#alpn;
        for (let i = 0; i < n; i++) target?.push(buf[pos + i] as number);
      }
      pos += n;
      this.#size -= n;
      this.#left -= n;
      if (this.#size !== 0) break;
      const p = this.#scratch;
      const at = (i: number): number => p[i] ?? 0;
      const collect = (state: State, size: number, dst: Destination = 'scratch'): void => {
        this.#state = state;
        this.#size = size;
        this.#dst = dst;
        if (dst === 'scratch') this.#scratch = [];
      };
      switch (this.#state) {
        case State.Start:
          collect(State.Header, 4);
          this.#left = 4;
          break;
        case State.Header:
          if (at(0) !== 1) return 'declined';
          this.#left = (at(1) << 16) + (at(2) << 8) + at(3);
          this.#version = [];
          collect(State.Version, 2, 'version');
          break;
        case State.Version:
          collect(State.Random, 32, undefined);
          break;
        case State.Random:
          collect(State.SessionIdLength, 1);
          break;
        case State.SessionIdLength:
          collect(State.SessionId, at(0), undefined);
          break;
        case State.SessionId:
          collect(State.CipherSuitesLength, 2);
          break;
        case State.CipherSuitesLength:
          collect(State.CipherSuites, (at(0) << 8) + at(1), undefined);
          break;
        case State.CipherSuites:
          collect(State.CompressionLength, 1);
          break;
        case State.CompressionLength:
          collect(State.Compression, at(0), undefined);
          break;
        case State.Compression:
          if (this.#left === 0) return 'ok';
          collect(State.Extension, 2);
          break;
        case State.Extension:
          if (this.#left === 0) return 'ok';
          collect(State.ExtensionHeader, 4);
          break;
        case State.ExtensionHeader:
          if (at(0) === 0 && at(1) === 0 && this.#host === undefined) collect(State.SniLength, 2);
          else if (at(0) === 0 && at(1) === 16 && this.#alpn === undefined) collect(State.AlpnLength, 2);
          else if (at(0) === 0 && at(1) === 43) collect(State.SupportedVersionsLength, 1);
          else collect(State.Extension, (at(2) << 8) + at(3), undefined);
          break;
        case State.SniLength:
          this.#ext = (at(0) << 8) + at(1);
          collect(State.SniHostHead, 3);
          break;
        case State.SniHostHead: {
          if (at(0) !== 0) return 'declined';
          const size = (at(1) << 8) + at(2);
          if (this.#ext < 3 + size) return 'declined';
          this.#ext -= 3 + size;
          this.#host = [];
          this.#state = State.SniHost;
          this.#size = size;
          this.#dst = 'host';
          break;
        }
        case State.SniHost:
          collect(State.Extension, this.#ext, undefined);
          break;
        case State.AlpnLength:
          this.#ext = (at(0) << 8) + at(1);
          this.#alpn = [];
          collect(State.AlpnProtocolLength, 1);
          break;
        case State.AlpnProtocolLength: {
          const size = at(0);
          if (size === 0 || this.#ext < 1 + size) return 'declined';
          this.#ext -= 1 + size;
          this.#state = State.AlpnProtocolData;
          this.#size = size;
          this.#dst = 'alpn';
          break;
        }
        case State.AlpnProtocolData:
          if (this.#ext !== 0) {
            this.#alpn?.push(0x2c);
            collect(State.AlpnProtocolLength, 1);
          } else {
            collect(State.Extension, 0, undefined);
          }
          break;
        case State.SupportedVersionsLength:
          // A client that lists supported_versions offers TLSv1.3 (nginx reports it so).
          this.#version = [3, 4];
          collect(State.Extension, at(0), undefined);
          break;
      }
      if (this.#left < this.#size) return 'declined';
    }
    return 'again';
  }
}
