/**
 * What every balancer shares: the peers of a group as nginx's `ngx_http_upstream_rr_peers_t`
 * holds them (primaries, then backups as `peers->next`), and the per-request picker that
 * `peer.get` is in nginx. A picker lives as long as one request's walk over the peers, so the
 * state nginx keeps per request (ip_hash's running hash, hash's rehash count, the 20 tries before
 * falling back to round robin, the switch to the backups) lives in it.
 */
import type { Peer } from '../peer.js';

/** Which peers one request has already tried, so a retry goes elsewhere (nginx's `tried` bitmap). */
export type TriedSet = Set<Peer>;

/** A group's peers, as the balancers see them. */
export interface PeerSets {
  readonly primaries: readonly Peer[];
  readonly backups: readonly Peer[];
  /**
   * nginx's `peers->single`: one primary and no backup. Such a peer is never taken out by
   * max_fails and its failures are not counted (ngx_http_upstream_free_round_robin_peer).
   */
  readonly single: boolean;
  /** The primaries' weights added up, down peers included (nginx's `total_weight`). */
  readonly totalWeight: number;
}

/** One request's walk over the peers (nginx's `peer.get` with its per-request data). */
export interface PeerPicker {
  /** The next peer, or undefined when none is available (nginx's `NGX_BUSY`). */
  pick(tried: TriedSet, now: number): Peer | undefined;
  /**
   * Response headers to add for the peer that answered, as name, value pairs (`sticky cookie`
   * sets its cookie here). Optional: most methods add none.
   */
  responseHeaders?(peer: Peer): readonly string[];
  /**
   * The attempt on `peer` ended without failing and without going to the next peer (nginx's
   * `peer.free` with neither NGX_PEER_FAILED nor NGX_PEER_NEXT): `sticky learn` learns here.
   * Optional.
   */
  answered?(peer: Peer): void;
  /**
   * `sticky` chose `peer` for the request, ahead of the method (nginx's `pc->hint`): round robin
   * charges it in its round here. Optional: the other methods take a sticky peer as it is.
   */
  bound?(peer: Peer, tried: TriedSet, now: number): void;
}

/**
 * What a balancer may read of the HTTP request or stream session it places: ip_hash reads the
 * client's address, `sticky` the Cookie header (HTTP only), and `hash` evaluates its key's
 * variables over the whole object, which is why {@link Balancer} is generic over it.
 */
export interface Balanced {
  readonly remoteAddress: string;
  header?(name: string): string | undefined;
}

/** A balancing method, built once per group and generation. */
export interface Balancer<R extends Balanced = Balanced> {
  /** The method's name as written in the configuration (`round_robin` when none is). */
  readonly method: string;
  /** Starts one request's or session's walk; `request` is undefined for health checks and one-shot picks. */
  begin(request: R | undefined): PeerPicker;
  /**
   * Takes how long a peer took to answer (connect to response head, ms), for methods that
   * balance by latency (`ewma`). Optional: the others ignore latency.
   */
  observe?(peer: Peer, latencyMs: number, now: number): void;
  /** A method's own view of a peer for the admin API (`ewma`: its latency estimate). Optional. */
  describe?(peer: Peer, now: number): Readonly<Record<string, number>>;
  /**
   * True for methods that compare active connections (`least_conn`, `random two`): with `zone`,
   * every worker's counts are shared (upstream/shared-peers.ts), as nginx's `peer->conns` is.
   */
  readonly readsConns?: boolean;
}

/** Builds the peer sets of a group. */
export function peerSets(peers: readonly Peer[]): PeerSets {
  const primaries = peers.filter((peer) => !peer.backup);
  const backups = peers.filter((peer) => peer.backup);
  return {
    primaries,
    backups,
    single: primaries.length === 1 && backups.length === 0,
    totalWeight: primaries.reduce((sum, peer) => sum + peer.weight, 0),
  };
}

/** Marks a chosen peer: nginx restarts the fail_timeout window of a peer chosen after it (every `get` does this). */
export function chosen(peer: Peer, now: number): Peer {
  if (now - peer.checked > peer.failTimeoutMs) {
    peer.checked = now;
    // Past max_fails, the try opens a new window that its outcome ends (round-robin.ts).
    peer.trackOut(now);
  }
  return peer;
}
