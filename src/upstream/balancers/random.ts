/**
 * nginx's `ngx_http_upstream_random_module` (`random [two [least_conn]]`): a peer drawn at random
 * with probability proportional to its weight; with `two`, two different usable peers are drawn
 * and the one with fewer active connections for its weight wins (the second on a tie), nginx's
 * ngx_http_upstream_get_random2_peer(). After 20 unusable draws, or with fewer than two
 * primaries, it falls back to round robin, as nginx does.
 */
import { randomInt } from 'node:crypto';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancingMethod } from '../upstream-module.js';
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
  readonly #roundRobin: RoundRobinPicker;
  #tries = 0;

  constructor(sets: PeerSets, two: boolean) {
    this.#sets = sets;
    this.#two = two;
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const sets = this.#sets;
    if (this.#tries > 20 || sets.primaries.length < 2) return this.#roundRobin.pick(tried, now);
    let first: Peer | undefined;
    for (;;) {
      const peer = peerAtWeight(sets.primaries, randomInt(sets.totalWeight));
      if (peer !== first && !tried.has(peer) && peer.available(now)) {
        if (!this.#two) return chosen(peer, now);
        if (first !== undefined) {
          // The second draw wins unless the first has strictly fewer connections for its weight.
          const better = peer.conns * first.weight > first.conns * peer.weight ? first : peer;
          return chosen(better, now);
        }
        first = peer;
      }
      if (++this.#tries > 20) return this.#roundRobin.pick(tried, now);
    }
  }
}

/** The `random` balancer of a group. */
export function randomBalancer(sets: PeerSets, setting: RandomSetting): Balancer {
  return { method: 'random', begin: () => new RandomPicker(sets, setting.two) };
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
        setBalancingMethod(ctx, 'random');
        if (two !== undefined && two !== 'two') ctx.fail(`invalid parameter "${two}"`);
        if (method !== undefined && method !== 'least_conn') ctx.fail(`invalid parameter "${method}"`);
        return { two: two === 'two' };
      },
    }),
  ],
};
