/**
 * One stream session (nginx's `ngx_stream_session_t`): a client connection from accept to close,
 * or the datagrams of one UDP client address and port, and what the variables and the access log read of it.
 */
import type { Socket } from 'node:net';
import type { TlsConnectionInfo } from '../tls/sni.js';
import type { ProxyProtocolAddresses } from '../core/proxy-protocol.js';
import type { PrereadValues } from './ssl-preread.js';

/** nginx's stream status codes (`NGX_STREAM_OK`, `NGX_STREAM_BAD_REQUEST`...). */
export type StreamStatus = 200 | 400 | 403 | 500 | 502 | 503;

/** One try of an upstream peer, for the `$upstream_*` variables. */
export interface UpstreamTry {
  /** `$upstream_addr` form. */
  readonly addr: string;
  /** In ms; -1 while connecting or when the connect failed (printed as `-`). */
  connectMs: number;
  /** In ms from the try's start to the peer's first byte; -1 before it (printed as `-`). */
  firstByteMs: number;
  /** When the try began, and ended (undefined while it goes on: it ends with the session), in ms (performance.now()). */
  readonly startedAt: number;
  endedAt: number | undefined;
  bytesSent: number;
  bytesReceived: number;
}

/** The addresses a session is created from: a TCP socket's, or a UDP client's and the listening socket's. */
export interface SessionEndpoints {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

/** A client address as ngx_sock_ntop() prints it with its port: `[::1]:5555` for IPv6. */
export function clientText(address: string, port: string): string {
  if (port === '') return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

let nextSessionId = 1;

/** The state of one session. */
export class StreamSession {
  /** `$connection`. */
  readonly id = nextSessionId++;
  /** When the connection was accepted, in ms (performance.now()). */
  readonly startedAt = performance.now();
  /** The TCP peer, before realip. */
  readonly peerAddress: string;
  readonly peerPort: string;
  readonly serverAddress: string;
  readonly serverPort: string;
  /** `$remote_addr` and `$remote_port`: the peer, or the PROXY protocol's source for a trusted peer (set_real_ip_from). */
  remoteAddress: string;
  remotePort: string;
  /** What a `listen ... proxy_protocol` header said. */
  proxyProtocol: ProxyProtocolAddresses | undefined;
  status: StreamStatus = 200;
  /** Bytes sent to and received from the client. */
  bytesSent = 0;
  bytesReceived = 0;
  /** `$ssl_preread_*`; undefined when the preread found no ClientHello (the variables are then empty). */
  preread: PrereadValues | undefined;
  /** The handshake of a `listen ... ssl` session. */
  tls: TlsConnectionInfo | undefined;
  readonly upstreams: UpstreamTry[] = [];
  /** `$server_name`: the first name of the server the session is in (the default server's until SNI or ssl_preread chose another). */
  serverName = '';
  /** `$limit_conn_status`: PASSED, REJECTED or REJECTED_DRY_RUN once a limit_conn key counted; undefined (not found) before. */
  limitConnStatus: string | undefined;
  /** Set when the session ended, in ms (performance.now()). */
  endedAt: number | undefined;
  /** The values `set` gave this session's variables. */
  variables: Map<string, string> | undefined;
  /** Map values computed for this session, and the captures of the last regex map match. */
  variableCache: Map<object, unknown> | undefined;
  captures: RegExpExecArray | undefined;

  /** `$protocol`. */
  readonly protocol: 'TCP' | 'UDP';

  constructor(socket: Socket | SessionEndpoints, protocol: 'TCP' | 'UDP' = 'TCP') {
    this.protocol = protocol;
    this.peerAddress = socket.remoteAddress ?? 'unix:';
    this.peerPort = socket.remotePort === undefined ? '' : String(socket.remotePort);
    this.serverAddress = socket.localAddress ?? '';
    this.serverPort = socket.localPort === undefined ? '' : String(socket.localPort);
    this.remoteAddress = this.peerAddress;
    this.remotePort = this.peerPort;
  }

  /** `$session_time`: seconds with millisecond resolution. */
  sessionTime(now = performance.now()): string {
    return (((this.endedAt ?? now) - this.startedAt) / 1000).toFixed(3);
  }
}
