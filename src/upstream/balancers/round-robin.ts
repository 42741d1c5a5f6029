/**
 * nginx's weighted round robin (ngx_http_upstream_round_robin.c): the smooth algorithm that gives
 * `a a b a c a a` for weights 5, 1, 1 instead of bursts, passive health (max_fails within
 * fail_timeout), max_conns, and backup peers used only when every primary is unavailable.
 */
import type { Peer } from '../peer.js';

/** Which peers one request has already tried, so a retry goes elsewhere (nginx's `tried` bitmap). */
export type TriedSet = Set<Peer>;

/** Picks a peer with nginx's smooth weighted round robin, or undefined when none is available. */
export function pickRoundRobin(peers: readonly Peer[], tried: TriedSet, now: number): Peer | undefined {
  let best: Peer | undefined;
  let total = 0;
  for (const peer of peers) {
    if (tried.has(peer) || !peer.available(now)) continue;
    peer.currentWeight += peer.effectiveWeight;
    total += peer.effectiveWeight;
    if (peer.effectiveWeight < peer.weight) peer.effectiveWeight++;
    if (best === undefined || peer.currentWeight > best.currentWeight) best = peer;
  }
  if (best === undefined) return undefined;
  best.currentWeight -= total;
  // A peer that was failing gets its window restarted when it is chosen again (ngx_http_upstream_get_peer).
  if (now - best.checked > best.failTimeoutMs) best.checked = now;
  return best;
}

/**
 * Records the outcome of a request to a peer (ngx_http_upstream_free_round_robin_peer). Returns
 * true when this failure takes the peer out for fail_timeout, which nginx logs as a warning.
 */
export function recordOutcome(peer: Peer, failed: boolean, now: number): boolean {
  if (failed) {
    peer.fails++;
    peer.accessed = now;
    peer.checked = now;
    if (peer.maxFails > 0) {
      // nginx lowers the effective weight so a flapping peer gets less traffic while it recovers.
      peer.effectiveWeight = Math.max(0, peer.effectiveWeight - Math.floor(peer.weight / peer.maxFails));
      return peer.fails >= peer.maxFails;
    }
    return false;
  }
  // A success after fail_timeout has passed since the last failure forgets the failures.
  if (peer.accessed < peer.checked) peer.fails = 0;
  return false;
}
