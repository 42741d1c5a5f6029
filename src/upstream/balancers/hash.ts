/**
 * nginx's `ngx_http_upstream_hash_module` (`hash key [consistent]`), bit for bit.
 *
 * Without `consistent` (ngx_http_upstream_get_hash_peer()): the hash is
 * `((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH`, compatible with Cache::Memcached, where
 * REHASH is the decimal count of previous attempts, omitted at the first; the peer is found by
 * walking the weights with `hash % total_weight`. After 20 unusable picks, with fewer than two
 * primaries or with an empty key it falls back to round robin.
 *
 * With `consistent` (ngx_http_upstream_init_chash()): a ketama ring of 160 points per unit of
 * weight per peer; the points of a peer are `crc32(HOST "\0" PORT PREV_HASH)`, compatible with
 * Cache::Memcached::Fast, where HOST and PORT split the `server` line's address at its last
 * colon (`unix:` paths have no port) and PREV_HASH is the previous point's hash as four
 * little-endian bytes (zero for the first). Points are sorted and deduplicated; a request goes to
 * the first point at or after `crc32(key)` and walks the ring from there past unusable peers;
 * among peers that share a `server` line (a name with several addresses) it picks by smooth
 * weighted round robin (ngx_http_upstream_get_chash_peer()).
 */
import { crc32 } from 'node:zlib';
import { compileTemplate, type CompiledTemplate, type Template } from '../../core/variables.js';
import { toByteString } from '../../core/byte-string.js';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { parseValue } from '../../conf/values.js';
import { setBalancer } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balanced, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';
import { peerAtWeight } from './ip-hash.js';
import { RoundRobinPicker } from './round-robin.js';

/** `hash key [consistent]`. */
export interface HashSetting {
  readonly key: Template;
  readonly consistent: boolean;
}

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    hash: HashSetting | undefined;
  }
}

/** A point of the consistent hash ring. */
export interface RingPoint {
  readonly hash: number;
  /** The `server` line the point belongs to. */
  readonly server: string;
}

/** Builds the ring of `ngx_http_upstream_init_chash()` for the primaries. */
export function buildRing(primaries: readonly Peer[]): RingPoint[] {
  const points: RingPoint[] = [];
  for (const peer of primaries) {
    const server = peer.server;
    let host = server;
    let port = '';
    if (server.length >= 5 && server.slice(0, 5).toLowerCase() === 'unix:') {
      host = server.slice(5);
    } else {
      // The port is the run of digits after the last colon, if the address ends with one.
      const match = /:(\d*)$/.exec(server);
      if (match !== null) {
        host = server.slice(0, match.index);
        port = match[1] ?? '';
      }
    }
    const base = crc32(Buffer.concat([Buffer.from(host, 'latin1'), Buffer.from([0]), Buffer.from(port, 'latin1')]));
    const previous = Buffer.alloc(4);
    for (let j = 0; j < peer.weight * 160; j++) {
      const hash = crc32(previous, base);
      points.push({ hash, server });
      previous.writeUInt32LE(hash);
    }
  }
  points.sort((a, b) => a.hash - b.hash);
  return points.filter((point, i) => i === 0 || (points[i - 1] as RingPoint).hash !== point.hash);
}

/** The index of the first point whose hash is at least `hash` (ngx_http_upstream_find_chash_point()); may equal the length. */
export function findPoint(points: readonly RingPoint[], hash: number): number {
  let i = 0;
  let j = points.length;
  while (i < j) {
    const k = (i + j) >> 1;
    const point = (points[k] as RingPoint).hash;
    if (hash > point) i = k + 1;
    else if (hash < point) j = k;
    else return k;
  }
  return i;
}

/** One request's `hash` state. */
class HashPicker implements PeerPicker {
  readonly #sets: PeerSets;
  readonly #key: Buffer;
  readonly #roundRobin: RoundRobinPicker;
  #tries = 0;
  #rehash = 0;
  #hash = 0;

  constructor(sets: PeerSets, key: string) {
    this.#sets = sets;
    this.#key = Buffer.from(key, 'latin1');
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const sets = this.#sets;
    if (this.#tries > 20 || sets.primaries.length < 2 || this.#key.length === 0) return this.#roundRobin.pick(tried, now);
    for (;;) {
      const input = this.#rehash > 0 ? Buffer.concat([Buffer.from(String(this.#rehash)), this.#key]) : this.#key;
      this.#hash = (this.#hash + ((crc32(input) >>> 16) & 0x7fff)) >>> 0;
      this.#rehash++;
      const peer = peerAtWeight(sets.primaries, this.#hash % sets.totalWeight);
      if (!tried.has(peer) && peer.available(now)) return chosen(peer, now);
      if (++this.#tries > 20) return this.#roundRobin.pick(tried, now);
    }
  }
}

/** One request's `hash ... consistent` state: its place on the ring. */
class ConsistentHashPicker implements PeerPicker {
  readonly #sets: PeerSets;
  readonly #points: readonly RingPoint[];
  readonly #empty: boolean;
  readonly #roundRobin: RoundRobinPicker;
  #tries = 0;
  #index: number;

  constructor(sets: PeerSets, points: readonly RingPoint[], key: string) {
    this.#sets = sets;
    this.#points = points;
    this.#empty = key.length === 0;
    this.#index = points.length === 0 ? 0 : findPoint(points, crc32(Buffer.from(key, 'latin1')));
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const sets = this.#sets;
    if (this.#tries > 20 || sets.single || this.#empty) return this.#roundRobin.pick(tried, now);
    if (this.#points.length === 0) return undefined;
    for (;;) {
      const server = (this.#points[this.#index % this.#points.length] as RingPoint).server;
      let best: Peer | undefined;
      let total = 0;
      for (const peer of sets.primaries) {
        if (tried.has(peer) || !peer.available(now) || peer.server !== server) continue;
        peer.currentWeight += peer.effectiveWeight;
        total += peer.effectiveWeight;
        if (peer.effectiveWeight < peer.weight) peer.effectiveWeight++;
        if (best === undefined || peer.currentWeight > best.currentWeight) best = peer;
      }
      if (best !== undefined) {
        best.currentWeight -= total;
        return chosen(best, now);
      }
      this.#index++;
      if (++this.#tries > 20) return this.#roundRobin.pick(tried, now);
    }
  }
}

/** The `hash` balancer of a group, with its key compiled for this generation. */
export function hashBalancer<R extends Balanced>(sets: PeerSets, setting: HashSetting, key: CompiledTemplate<R>): Balancer<R> {
  if (!setting.consistent) {
    return { method: 'hash', begin: (request) => new HashPicker(sets, request === undefined ? '' : key(request)) };
  }
  const points = buildRing(sets.primaries);
  return { method: 'hash', begin: (request) => new ConsistentHashPicker(sets, points, request === undefined ? '' : key(request)) };
}

/** The `hash` directive (its http check: http/upstream-hash-module.ts). */
export const upstreamHashModule: ConfModule = {
  name: 'ngx_http_upstream_hash_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'hash',
      contexts: ['upstream'],
      args: [1, 2],
      inherit: false,
      syntax: 'key [consistent];',
      summary: 'Passes requests with the same key (text and variables) to the same server; consistent uses a ketama ring, so adding or removing a server remaps few keys.',
      default: () => undefined,
      defaultText: '—',
      parse: ([key = '', flag], ctx) => {
        const template = parseValue(key, ctx);
        if (flag !== undefined && flag !== 'consistent') ctx.fail(`invalid parameter "${flag}"`);
        const setting: HashSetting = { key: template, consistent: flag === 'consistent' };
        setBalancer(ctx, {
          method: 'hash',
          backup: false,
          build: (sets, variables) => {
            // The key is compiled per generation against the variables of `http` or `stream`.
            if (variables === undefined) throw new Error('a hash balancer needs the variable table');
            return hashBalancer(sets, setting, compileTemplate(setting.key, variables, { literal: toByteString }));
          },
        });
        return setting;
      },
    }),
  ],
  // The keys' variables are checked by http/upstream-hash-module.ts, which knows http's variables.
};
