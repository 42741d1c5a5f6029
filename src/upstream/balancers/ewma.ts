/**
 * `ewma [decay=time]`: a latency-aware method that nginx does not have, the peak EWMA of Finagle
 * (com.twitter.finagle.loadbalancer.PeakEwma), which Linkerd, Envoy, Kong and APISIX also use.
 *
 * Each peer keeps an estimate of how long it takes to answer (from the start of a try to the
 * response head). A sample above the estimate replaces it at once (peak-sensitive: a peer that
 * turns slow is avoided from its first slow answer); a lower one pulls it down with the weight
 * `exp(-elapsed / decay)`, and with no sample the estimate decays towards zero, so that a peer
 * avoided for being slow is tried again after a while (Finagle's `get()` observes 0). The cost of a
 * peer is `estimate * (active + 1)`: its latency times the requests it would queue behind. Two
 * usable peers are drawn at random by weight and the one with the lower cost per weight wins
 * (power of two choices: no herd on the single best peer, and a slow peer is chosen only when
 * drawn against a peer that is even worse).
 *
 * A peer without a sample yet costs nothing while it is idle and a penalty once it has a request
 * in flight (Finagle's `Penalty`), so new peers are tried one request at a time. Estimates are this
 * worker's and start over at a reload. Failures are not samples: a refused connection is quick,
 * and `max_fails` takes such a peer out.
 */
import { randomInt } from 'node:crypto';
import { parseTime } from '../../core/parse.js';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancer } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';
import { peerAtWeight } from './ip-hash.js';
import { RoundRobinPicker } from './round-robin.js';

/** `ewma [decay=time]`. */
export interface EwmaSetting {
  /** How fast old samples lose weight (the time constant), ms. Default 10 s, as Finagle's and Linkerd's. */
  readonly decayMs: number;
}

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    ewma: EwmaSetting | undefined;
  }
}

/** The default time constant: Finagle's `decayTime` and Linkerd's `decay` are 10 s. */
export const DEFAULT_EWMA_DECAY_MS = 10_000;

/** The cost of a peer with requests in flight and no sample yet: above any real latency. */
const PENALTY_MS = 1e9;

/** One peer's peak-sensitive moving average of its latency. */
export class PeakEwma {
  readonly #decayMs: number;
  #estimate = 0;
  #stamp = 0;
  #sampled = false;

  constructor(decayMs: number) {
    this.#decayMs = decayMs;
  }

  /** True once a sample was taken. */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** Takes a sample (ms) at `now` (ms): a higher one at once, a lower one weighted by the time since the last. */
  observe(sampleMs: number, now: number): void {
    // Finagle's PeakEwma.observe(): compared with, and mixed into, the estimate as of the last sample.
    if (!this.#sampled || sampleMs > this.#estimate) {
      this.#estimate = sampleMs;
    } else {
      const w = Math.exp(-Math.max(now - this.#stamp, 0) / this.#decayMs);
      this.#estimate = this.#estimate * w + sampleMs * (1 - w);
    }
    this.#stamp = now;
    this.#sampled = true;
  }

  /** The estimate at `now`: the last one decayed towards zero for the time without a sample. */
  estimate(now: number): number {
    if (!this.#sampled) return 0;
    return this.#estimate * Math.exp(-Math.max(now - this.#stamp, 0) / this.#decayMs);
  }
}

/** The `ewma` balancer: its estimates live as long as the group (one configuration generation). */
class EwmaBalancer implements Balancer {
  readonly method = 'ewma';
  readonly #sets: PeerSets;
  readonly #decayMs: number;
  readonly #draw: (max: number) => number;
  readonly #estimates = new WeakMap<Peer, PeakEwma>();

  constructor(sets: PeerSets, setting: EwmaSetting, draw: (max: number) => number) {
    this.#sets = sets;
    this.#decayMs = setting.decayMs;
    this.#draw = draw;
  }

  begin(): PeerPicker {
    return new EwmaPicker(this.#sets, this, this.#draw);
  }

  observe(peer: Peer, latencyMs: number, now: number): void {
    this.#ewmaOf(peer).observe(Math.max(latencyMs, 0), now);
  }

  describe(peer: Peer, now: number): Readonly<Record<string, number>> {
    return { latencyMs: Math.round(this.#ewmaOf(peer).estimate(now) * 1000) / 1000, cost: Math.round(this.cost(peer, now) * 1000) / 1000 };
  }

  /** `estimate * (active + 1)`, or the penalty for a busy peer never sampled. */
  cost(peer: Peer, now: number): number {
    const ewma = this.#ewmaOf(peer);
    if (!ewma.sampled) return peer.conns === 0 ? 0 : PENALTY_MS + peer.conns;
    return ewma.estimate(now) * (peer.conns + 1);
  }

  #ewmaOf(peer: Peer): PeakEwma {
    let ewma = this.#estimates.get(peer);
    if (ewma === undefined) this.#estimates.set(peer, (ewma = new PeakEwma(this.#decayMs)));
    return ewma;
  }
}

/** One request's choice: the cheaper of two draws among the usable primaries. */
class EwmaPicker implements PeerPicker {
  readonly #sets: PeerSets;
  readonly #balancer: EwmaBalancer;
  readonly #draw: (max: number) => number;
  readonly #roundRobin: RoundRobinPicker;

  constructor(sets: PeerSets, balancer: EwmaBalancer, draw: (max: number) => number) {
    this.#sets = sets;
    this.#balancer = balancer;
    this.#draw = draw;
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    if (this.#sets.single) return this.#roundRobin.pick(tried, now);
    const usable = this.#sets.primaries.filter((peer) => !tried.has(peer) && peer.available(now));
    if (usable.length <= 1) return usable[0] === undefined ? undefined : chosen(usable[0], now);
    const total = usable.reduce((sum, peer) => sum + peer.weight, 0);
    const first = peerAtWeight(usable, this.#draw(total));
    // The second draw is among the others, so that the two are always different peers.
    const others = usable.filter((peer) => peer !== first);
    const second = peerAtWeight(others, this.#draw(total - first.weight));
    const a = this.#balancer.cost(first, now) * second.weight;
    const b = this.#balancer.cost(second, now) * first.weight;
    return chosen(b < a ? second : first, now);
  }
}

/**
 * The `ewma` balancer of a group. `draw` returns an integer in [0, max); default a CSPRNG draw
 * (tests pass their own sequence).
 */
export function ewmaBalancer(sets: PeerSets, setting: EwmaSetting, draw: (max: number) => number = randomInt): Balancer {
  return new EwmaBalancer(sets, setting, draw);
}

/** The `ewma` directive (hitless's own). */
export const upstreamEwmaModule: ConfModule = {
  name: 'hitless_upstream_ewma_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'ewma',
      contexts: ['upstream'],
      args: [0, 1],
      inherit: false,
      syntax: '[decay=time];',
      summary: 'Passes a request to the cheaper of two servers drawn at random, the cost being a peak-sensitive moving average of response time times (active requests + 1); decay defaults to 10s.',
      default: () => undefined,
      defaultText: '—',
      parse: ([param], ctx) => {
        let decayMs = DEFAULT_EWMA_DECAY_MS;
        if (param !== undefined) {
          if (!param.startsWith('decay=')) ctx.fail(`invalid parameter "${param}"`);
          decayMs = parseTime(param.slice('decay='.length)) ?? ctx.fail(`invalid parameter "${param}"`);
          if (decayMs === 0) ctx.fail(`invalid parameter "${param}"`);
        }
        const setting: EwmaSetting = { decayMs };
        setBalancer(ctx, { method: 'ewma', backup: false, build: (sets) => ewmaBalancer(sets, setting) });
        return setting;
      },
    }),
  ],
};
