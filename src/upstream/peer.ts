/**
 * A peer of an upstream group: one resolved address of a `server` line, with the state the
 * balancers and passive health checks keep about it (nginx's `ngx_http_upstream_rr_peer_t`).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { UpstreamHealthTable } from './health/health-table.js';

/** Where to connect: a TCP address or a unix socket path. */
export type PeerAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/** What a `Peer` is built from. */
export interface PeerInit {
  name: string;
  address: PeerAddress;
  server: string;
  weight: number;
  maxFails: number;
  failTimeoutMs: number;
  maxConns: number;
  backup: boolean;
  down: boolean;
  /**
   * NGINX Plus's `drain`: the peer keeps the requests bound to it (sticky) and gets no new ones.
   * Default: false.
   */
  drain?: boolean;
  /** The `route=` parameter (sticky's server ID). Default: none, the ID is the MD5 of the name. */
  route?: string;
  /** The group's name, which active health checks report peers under. Default: `''`. */
  group?: string;
  /** The active health checks' table this peer is read from (the server's UpstreamRuntime); none: never unhealthy. */
  health?: UpstreamHealthTable;
}

/** One peer and its counters. */
export class Peer {
  /** `$upstream_addr` form: `127.0.0.1:8080`, `[::1]:8080`, `unix:/path`. */
  readonly name: string;
  readonly address: PeerAddress;
  /** The `server` line's text, for logs and the consistent hash ring (nginx's `peer->server`). */
  readonly server: string;
  /** The group the peer belongs to. */
  readonly group: string;
  readonly weight: number;
  readonly maxFails: number;
  readonly failTimeoutMs: number;
  readonly maxConns: number;
  readonly backup: boolean;
  down: boolean;
  /** `drain`: only requests bound to the peer (sticky) go to it. */
  drain: boolean;
  /**
   * The server ID `sticky` binds clients with (nginx's `peer->sid`): the `route=` parameter, or the
   * MD5 of the name in hex (ngx_http_upstream_init_round_robin_sid()).
   */
  readonly sid: string;
  /** Smooth weighted round-robin state (ngx_http_upstream_get_peer). */
  currentWeight = 0;
  effectiveWeight: number;
  /** Connections and requests in progress to this peer from this worker. */
  conns = 0;
  /**
   * Those of the other workers, as the master last told (a group with `zone` whose method
   * compares active connections: upstream/shared-peers.ts); 0 otherwise.
   */
  otherConns = 0;
  /** Failures counted within the current fail_timeout window. */
  fails = 0;
  /** When the last failure was counted, or the peer last checked after being unavailable (ms). */
  checked = 0;
  /** When the last failure was counted (ms); 0 when none. */
  accessed = 0;
  /** Tries sent to this peer by this worker (NGINX Plus's API `requests`). */
  requests = 0;
  /** Failures counted against this peer by this worker, ever. */
  failures = 0;
  /** How many times max_fails took the peer out (NGINX Plus's API `unavail`). */
  unavail = 0;
  /**
   * The window max_fails keeps the peer out in, for `hitless_upstream_peer_downtime_seconds_total`
   * (ms): from when it went out to `checked` + fail_timeout, or to the success that brought it back.
   */
  outSince = 0;
  outUntil = 0;
  /** Told each time {@link trackOut} finds the peer out (the group lists it for the worker's reports). */
  onOut: ((peer: Peer) => void) | undefined;
  readonly #health: UpstreamHealthTable | undefined;

  constructor(init: PeerInit) {
    this.#health = init.health;
    this.name = init.name;
    this.address = init.address;
    this.server = init.server;
    this.group = init.group ?? '';
    this.weight = init.weight;
    this.effectiveWeight = init.weight;
    this.maxFails = init.maxFails;
    this.failTimeoutMs = init.failTimeoutMs;
    this.maxConns = init.maxConns;
    this.backup = init.backup;
    this.down = init.down;
    this.drain = init.drain ?? false;
    this.sid = init.route !== undefined && init.route !== '' ? init.route : createHash('md5').update(init.name).digest('hex');
  }

  /** True when passive health checks keep this peer out right now (nginx's max_fails within fail_timeout). */
  failedRecently(now: number): boolean {
    return this.maxFails > 0 && this.fails >= this.maxFails && now - this.checked <= this.failTimeoutMs;
  }

  /**
   * Moves the out window after `fails` or `checked` changed: opens one when the peer is now out
   * (a window that ended before `checked` is over; a new one starts there), stretches it to the
   * new `checked` + fail_timeout, or ends it now when the peer is back.
   */
  trackOut(now: number): void {
    if (this.failedRecently(now)) {
      if (this.outUntil < this.checked) this.outSince = this.checked;
      this.outUntil = this.checked + this.failTimeoutMs;
      this.onOut?.(this);
    } else if (this.outUntil > now) {
      this.outUntil = now;
    }
  }

  /** True when the active health check (`health_check`) has the peer out. */
  get unhealthy(): boolean {
    return this.#health?.isUnhealthy(this.group, this.name) ?? false;
  }

  /** Active connections to the peer from every worker, as least_conn and random two compare them (nginx's `peer->conns`). */
  get load(): number {
    return this.conns + this.otherConns;
  }

  /** True when `max_conns` is reached. */
  get full(): boolean {
    return this.maxConns > 0 && this.conns >= this.maxConns;
  }

  /**
   * True when the peer may take another request now: the checks every nginx balancer makes before
   * it considers a peer (down, max_fails within fail_timeout, max_conns), plus the active check,
   * and not `drain`.
   */
  available(now: number): boolean {
    return !this.drain && this.usable(now);
  }

  /** True when the peer may take a request bound to it (sticky): {@link available} ignoring `drain`. */
  usable(now: number): boolean {
    return !this.down && !this.unhealthy && !this.failedRecently(now) && !this.full;
  }
}

/** Formats an address for `$upstream_addr`. */
export function peerName(address: PeerAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
