/**
 * nginx's `ngx_http_upstream_random_module` (`random [two [least_conn]]`): a peer drawn at random
 * with probability proportional to its weight; with `two`, two different usable peers are drawn
 * and the one with fewer active connections for its weight wins (the second on a tie), nginx's
 * ngx_http_upstream_get_random2_peer(). After 20 unusable draws, or with fewer than two
 * primaries, it falls back to round robin, as nginx does.
 *
 * Checked against nginx's src/http/modules/ngx_http_upstream_random_module.c (lines as in nginx
 * 1.25's source): the fallback `if (rp->tries > 20 || peers->single)` (line 317; the nginx/nginx
 * head writes `peers->number < 2`, the same for a method that refuses `backup`), the redraw of
 * the same peer `if (peer == prev) goto next` (339), and the tie-break (365-372)
 * `if (peer->conns * prev->weight > prev->conns * peer->weight) peer = prev;`: the first draw
 * wins only when the second is strictly more loaded for its weight. Every unusable draw, the
 * repeated one included, counts against the 20 tries (`next: if (++rp->tries > 20)`, 378-383).
 */
import { randomInt } from 'node:crypto';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancer } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';
import { peerAtWeight } from './ip-hash.js';
import { RoundRobinPicker } from './round-robin.js';

/** `random [two [least_conn]]`. */
export interface RandomSetting {
  /** `two`: the better of two draws, by least_conn (the only method nginx offers). */
  readonly two: boolean;
}

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    random: RandomSetting | undefined;
  }
}

/** One request's random draws. */
class RandomPicker implements PeerPicker {
  readonly #sets: PeerSets;
  readonly #two: boolean;
  readonly #draw: (max: number) => number;
  readonly #roundRobin: RoundRobinPicker;
  #tries = 0;

  constructor(sets: PeerSets, two: boolean, draw: (max: number) => number) {
    this.#sets = sets;
    this.#two = two;
    this.#draw = draw;
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const sets = this.#sets;
    if (this.#tries > 20 || sets.primaries.length < 2) return this.#roundRobin.pick(tried, now);
    let first: Peer | undefined;
    for (;;) {
      const peer = peerAtWeight(sets.primaries, this.#draw(sets.totalWeight));
      if (peer !== first && !tried.has(peer) && peer.available(now)) {
        if (!this.#two) return chosen(peer, now);
        if (first !== undefined) {
          // ngx_http_upstream_get_random2_peer(): the second draw wins unless it is strictly
          // more loaded for its weight than the first (`peer->conns * prev->weight > prev->conns * peer->weight`).
          const better = peer.load * first.weight > first.load * peer.weight ? first : peer;
          return chosen(better, now);
        }
        first = peer;
      }
      if (++this.#tries > 20) return this.#roundRobin.pick(tried, now);
    }
  }
}

/**
 * The `random` balancer of a group. `draw` returns an integer in [0, max): nginx's
 * `ngx_random() % peers->total_weight`; default a CSPRNG draw (tests pass their own sequence).
 */
export function randomBalancer(sets: PeerSets, setting: RandomSetting, draw: (max: number) => number = randomInt): Balancer {
  return { method: 'random', readsConns: setting.two, begin: () => new RandomPicker(sets, setting.two, draw) };
}

/** The `random` directive. */
export const upstreamRandomModule: ConfModule = {
  name: 'ngx_http_upstream_random_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'random',
      contexts: ['upstream'],
      args: [0, 1, 2],
      inherit: false,
      syntax: '[two [method]];',
      summary: 'Passes a request to a server drawn at random by weight; with two, to the less loaded (least_conn) of two drawn servers.',
      default: () => undefined,
      defaultText: '—',
      parse: ([two, method], ctx) => {
        if (two !== undefined && two !== 'two') ctx.fail(`invalid parameter "${two}"`);
        if (method !== undefined && method !== 'least_conn') ctx.fail(`invalid parameter "${method}"`);
        const setting: RandomSetting = { two: two === 'two' };
        setBalancer(ctx, { method: 'random', backup: false, build: (sets) => randomBalancer(sets, setting) });
        return setting;
      },
    }),
  ],
};
