/**
 * nginx's `ngx_http_upstream_least_conn_module`: the peer with the fewest active connections for
 * its weight (`conns / weight`, compared by cross-multiplying as nginx does); among equals, the
 * smooth weighted round robin, starting from the first of them. A single peer and the fallback to
 * the backups behave as in round robin. The counts are this worker's, as in nginx without `zone`
 * (docs/load-balancing.md says why that stays so with `zone`).
 *
 * Checked against nginx's src/http/modules/ngx_http_upstream_least_conn_module.c,
 * ngx_http_upstream_get_least_conn_peer() (lines as in nginx 1.25's source): a single peer goes to
 * round robin (114-116); the first loop skips tried, down, failed and full peers and keeps the
 * first least loaded one, `many` set on an equal ratio (135-177); the second loop runs from that
 * peer on over the equally loaded usable ones with smooth weighted round robin, replacing `best`
 * only on a strictly greater current_weight (186-232); then `best->current_weight -= total` (234)
 * and the fail_timeout window restarts (236-238); with none, the backups (259-281). Recent nginx
 * no longer resets every peer's `fails` when none is usable (the old "mark them as live for
 * quick recovery" loop is gone), and neither does hitless.
 */
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancer } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balancer, type PeerSets, type TriedSet } from './balancer.js';
import { RoundRobinPicker } from './round-robin.js';

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    least_conn: boolean;
  }
}

/** `ngx_http_upstream_get_least_conn_peer()` over one set of peers; `available()` is nginx's down, max_fails and max_conns checks plus the active health check. */
export function pickLeastConn(peers: readonly Peer[], tried: TriedSet, now: number): Peer | undefined {
  let best: Peer | undefined;
  let bestIndex = 0;
  let many = false;
  for (let i = 0; i < peers.length; i++) {
    const peer = peers[i] as Peer;
    if (tried.has(peer) || !peer.available(now)) continue;
    if (best === undefined || peer.load * best.weight < best.load * peer.weight) {
      best = peer;
      bestIndex = i;
      many = false;
    } else if (peer.load * best.weight === best.load * peer.weight) {
      many = true;
    }
  }
  if (best === undefined) return undefined;
  let winner: Peer = best;
  let total = 0;
  if (many) {
    // Round robin among the peers as loaded as the best, from the best on (nginx's second loop).
    for (let i = bestIndex; i < peers.length; i++) {
      const peer = peers[i] as Peer;
      if (tried.has(peer) || !peer.available(now)) continue;
      if (peer.load * winner.weight !== winner.load * peer.weight) continue;
      peer.currentWeight += peer.effectiveWeight;
      total += peer.effectiveWeight;
      if (peer.effectiveWeight < peer.weight) peer.effectiveWeight++;
      if (peer.currentWeight > winner.currentWeight) winner = peer;
    }
  }
  winner.currentWeight -= total;
  return chosen(winner, now);
}

/** The `least_conn` balancer of a group. */
export function leastConnBalancer(sets: PeerSets): Balancer {
  return { method: 'least_conn', readsConns: true, begin: () => new RoundRobinPicker(sets, pickLeastConn) };
}

/** The `least_conn` directive. */
export const upstreamLeastConnModule: ConfModule = {
  name: 'ngx_http_upstream_least_conn_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'least_conn',
      contexts: ['upstream'],
      args: [0],
      inherit: false,
      syntax: ';',
      summary: 'Passes a request to the server with the fewest active connections for its weight; ties go round robin.',
      default: () => false,
      defaultText: '—',
      parse: (_args, ctx) => {
        setBalancer(ctx, { method: 'least_conn', backup: true, build: (sets) => leastConnBalancer(sets) });
        return true;
      },
    }),
  ],
};
