/**
 * Every `diagnostics_channel` hitless publishes on, declared in one place as undici's
 * lib/core/diagnostics.js does, so that a subscriber finds them all here and the names never drift.
 * Publishers check `hasSubscribers` first: an event nobody watches costs one property read.
 * Payloads are plain objects; their shapes are the interfaces below (docs/load-balancing.md lists
 * them too).
 */
import { channel, type Channel } from 'node:diagnostics_channel';

/** A channel whose messages have the shape `M`; `channel` is Node's own, to subscribe to. */
export class DiagnosticsChannel<M> {
  readonly channel: Channel;

  constructor(name: string) {
    this.channel = channel(name);
  }

  /** True when anyone listens: build the message only then. */
  get hasSubscribers(): boolean {
    return this.channel.hasSubscribers;
  }

  publish(message: M): void {
    this.channel.publish(message);
  }

  /** Publishes what `make` builds, only when anyone listens. */
  publishLazy(make: () => M): void {
    if (this.channel.hasSubscribers) this.channel.publish(make());
  }
}

function typed<M>(name: string): DiagnosticsChannel<M> {
  return new DiagnosticsChannel<M>(name);
}

/** What speaks to the upstream: `http` (proxy_pass), `grpc` (grpc_pass), `tcp` and `udp` (stream proxy_pass). */
export type UpstreamProtocol = 'http' | 'grpc' | 'fastcgi' | 'uwsgi' | 'scgi' | 'tcp' | 'udp';

/**
 * How one attempt on one peer ended. `ok`: it completed; `failed`: it counted against the peer
 * (error, timeout, invalid header, a 5xx of proxy_next_upstream); `next`: the next peer was tried
 * without counting a failure (proxy_next_upstream http_403, http_404, http_429); `aborted`: the
 * client went away (an HTTP request cut by the worker's shutdown reads as this too); `drained`:
 * the worker's shutdown ended a stream session.
 */
export type AttemptOutcome = 'ok' | 'failed' | 'next' | 'aborted' | 'drained';

/** `hitless:upstream:connect`: a connection to a peer was opened (TCP, before TLS). */
export interface UpstreamConnectMessage {
  readonly protocol: UpstreamProtocol;
  readonly group: string;
  readonly peer: string;
}

/** `hitless:upstream:connectError`: a connection (or its TLS handshake) to a peer failed. */
export interface UpstreamConnectErrorMessage extends UpstreamConnectMessage {
  /** nginx's words: `connect() failed (111: Connection refused) while connecting to upstream`. */
  readonly error: string;
  readonly timedOut: boolean;
}

/** Milliseconds from the attempt's start; -1 for a step it never reached. */
export interface AttemptTimings {
  /** Until the connection was ready (0 for a pooled one, -1 if none was). */
  readonly connectMs: number;
  /** Until the response head (HTTP, gRPC) or the first byte back (stream); -1 without one. */
  readonly headerMs: number;
  /** Until the attempt finished. */
  readonly totalMs: number;
}

/** `hitless:upstream:finish`: one attempt on one peer is over; published exactly once per attempt. */
export interface UpstreamFinishMessage extends UpstreamConnectMessage {
  readonly outcome: AttemptOutcome;
  /** Why, in proxy_next_upstream's words where it has them (`error`, `timeout`, `http_502`), else ''. */
  readonly reason: string;
  /** 1 for the request's first attempt, 2 for its first retry... */
  readonly attempt: number;
  readonly timings: AttemptTimings;
}

/** `hitless:request:finish`: an HTTP request or a stream session is over (after its access log line). */
export interface RequestFinishMessage {
  readonly protocol: 'http' | 'tcp' | 'udp';
  /** The HttpRequest or StreamSession, to read variables and status from. */
  readonly request: unknown;
}

/** `hitless:reload`: the master applied a new configuration (`ok`) or kept the old one. */
export interface ReloadMessage {
  readonly ok: boolean;
  /** The generation now serving. */
  readonly generation: number;
  readonly error?: string;
}

/** `hitless:certificate:put`: the certificate store holds a new certificate for `name`. */
export interface CertificatePutMessage {
  readonly name: string;
  /** True when it replaced one. */
  readonly replaced: boolean;
}

/** `hitless:health:change`: an active health check moved a peer to another state. */
export interface HealthChangeMessage {
  readonly group: string;
  readonly peer: string;
  readonly state: 'up' | 'unhealthy' | 'checking';
}

/** `hitless:tls:handshake`: a client's TLS handshake on an http or stream `listen ... ssl` address ended, once per handshake. */
export interface TlsHandshakeMessage {
  /** Which block's listener: `http` or `stream`. */
  readonly module: 'http' | 'stream';
  readonly ok: boolean;
  /** True when it resumed a session (a ticket or the session cache). */
  readonly resumed: boolean;
  /** Why it failed: OpenSSL's reason (`no_shared_cipher`, `wrong_version_number`), `timeout`, `closed`, `rejected`; '' when ok. */
  readonly reason: string;
}

/** `hitless:health:probe`: one active health check probe of a peer ended. */
export interface HealthProbeMessage {
  readonly group: string;
  readonly peer: string;
  readonly ok: boolean;
}

/** The channels, by what they report. */
export const channels = {
  upstreamConnect: typed<UpstreamConnectMessage>('hitless:upstream:connect'),
  upstreamConnectError: typed<UpstreamConnectErrorMessage>('hitless:upstream:connectError'),
  upstreamFinish: typed<UpstreamFinishMessage>('hitless:upstream:finish'),
  requestFinish: typed<RequestFinishMessage>('hitless:request:finish'),
  reload: typed<ReloadMessage>('hitless:reload'),
  certificatePut: typed<CertificatePutMessage>('hitless:certificate:put'),
  healthChange: typed<HealthChangeMessage>('hitless:health:change'),
  healthProbe: typed<HealthProbeMessage>('hitless:health:probe'),
  tlsHandshake: typed<TlsHandshakeMessage>('hitless:tls:handshake'),
} as const;

/** Published when a connection to an upstream peer is opened: `{ protocol, peer, group }` (the name `src/index.ts` has exported since 0.1). */
export const upstreamConnectChannel: Channel = channels.upstreamConnect.channel;
