/**
 * nginx's weighted round robin (ngx_http_upstream_round_robin.c): the smooth algorithm that gives
 * `a a b a c a a` for weights 5, 1, 1 instead of bursts, passive health (max_fails within
 * fail_timeout), max_conns, and backup peers used only when every primary is unavailable. It is
 * also what hash, ip_hash, random and least_conn fall back to, as they do in nginx.
 */
import type { Peer } from '../peer.js';
import { chosen, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';

export type { TriedSet } from './balancer.js';

/**
 * nginx's `ngx_http_upstream_get_peer()`: the smooth weighted choice among the available peers
 * of one set, or undefined when none is.
 */
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
  return chosen(best, now);
}

/**
 * ngx_http_upstream_get_peer() with a sticky peer (`pc->hint`): the round of the smooth choice
 * runs as usual and charges the sticky peer instead of the best, so that sticky requests count in
 * the balance of new ones; a sticky peer already `total - weight` behind is taken without a
 * round ("do not update weights if the limit exceeded"). `totalWeight`: the set's, down peers
 * included.
 */
export function chargeRoundRobin(peers: readonly Peer[], sticky: Peer, totalWeight: number, tried: TriedSet, now: number): void {
  if (sticky.currentWeight <= -(totalWeight - sticky.weight)) return;
  let total = 0;
  for (const peer of peers) {
    if (tried.has(peer) || !peer.available(now)) continue;
    peer.currentWeight += peer.effectiveWeight;
    total += peer.effectiveWeight;
    if (peer.effectiveWeight < peer.weight) peer.effectiveWeight++;
  }
  sticky.currentWeight -= total;
}

/**
 * nginx's `ngx_http_upstream_get_round_robin_peer()`: a single peer is used unless it is down or
 * full, whatever its failures; otherwise the smooth choice among the primaries, and once none is
 * left, among the backups for the rest of the request (`rrp->peers = peers->next`).
 */
export class RoundRobinPicker implements PeerPicker {
  readonly #sets: PeerSets;
  /** The function that chooses within one set; least_conn passes its own. */
  readonly #choose: (peers: readonly Peer[], tried: TriedSet, now: number) => Peer | undefined;
  #onBackups = false;

  constructor(sets: PeerSets, choose = pickRoundRobin) {
    this.#sets = sets;
    this.#choose = choose;
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    if (!this.#onBackups) {
      const sets = this.#sets;
      if (sets.single) {
        const peer = sets.primaries[0] as Peer;
        return peer.down || peer.drain || peer.unhealthy || peer.full ? undefined : peer;
      }
      const peer = this.#choose(sets.primaries, tried, now);
      if (peer !== undefined || sets.backups.length === 0) return peer;
      this.#onBackups = true;
    }
    return this.#choose(this.#sets.backups, tried, now);
  }

  bound(peer: Peer, tried: TriedSet, now: number): void {
    // Round robin's own choice only: least_conn, which passes its own, takes a sticky peer as it is.
    if (this.#choose !== pickRoundRobin || this.#sets.single) return;
    const { primaries, backups } = this.#sets;
    const peers = peer.backup ? backups : primaries;
    const total = peer.backup ? backups.reduce((sum, each) => sum + each.weight, 0) : this.#sets.totalWeight;
    chargeRoundRobin(peers, peer, total, tried, now);
  }
}

/** The default method of every group. */
export function roundRobinBalancer(sets: PeerSets): Balancer {
  return { method: 'round_robin', begin: () => new RoundRobinPicker(sets) };
}

/**
 * Records the outcome of a request to a peer (ngx_http_upstream_free_round_robin_peer). Returns
 * true when the peer has now failed max_fails times, which nginx logs as a warning each time.
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
  // A success after the peer was chosen again past fail_timeout forgets the failures ("mark peer live if check passed").
  if (peer.accessed < peer.checked) peer.fails = 0;
  return false;
}
