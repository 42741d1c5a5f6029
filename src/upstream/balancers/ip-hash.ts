/**
 * nginx's `ngx_http_upstream_ip_hash_module`, bit for bit: the client's address (after realip,
 * which nginx applies to `r->connection->sockaddr`) hashed from 89 with
 * `hash = (hash * 113 + byte) % 6271` over the first three octets of an IPv4 address or all
 * sixteen bytes of an IPv6 one, the peer found by walking the weights, and after 20 unusable
 * picks the fallback to round robin (ngx_http_upstream_get_ip_hash_peer()).
 */
import { isIP } from 'node:net';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancer } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balanced, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';
import { RoundRobinPicker } from './round-robin.js';

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    ip_hash: boolean;
  }
}

/** The bytes nginx hashes for an address: 3 for IPv4, 16 for IPv6, three zeros for anything else (a unix socket). */
export function ipHashBytes(address: string): number[] {
  const mapped = address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(mapped) === 4) return mapped.split('.').slice(0, 3).map(Number);
  if (isIP(address) === 6) return ipv6Bytes(address);
  return [0, 0, 0];
}

/** The sixteen bytes of an IPv6 address in text form (`::`, and a trailing dotted IPv4, included). */
function ipv6Bytes(text: string): number[] {
  const [head = '', tail] = text.split('::');
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (group.includes('.')) {
        const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
        return [(a << 8) | b, (c << 8) | d];
      }
      return [parseInt(group, 16)];
    });
  };
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return words.flatMap((word) => [word >> 8, word & 0xff]);
}

/** Walks the weights as nginx does: the peer that `w` (less than the total weight) falls on, and its index. */
export function peerAtWeight(peers: readonly Peer[], w: number): Peer {
  let index = 0;
  let rest = w;
  while (rest >= (peers[index] as Peer).weight) {
    rest -= (peers[index] as Peer).weight;
    index++;
  }
  return peers[index] as Peer;
}

/** One request's ip_hash state: the running hash and the tries, kept across its retries. */
class IpHashPicker implements PeerPicker {
  readonly #sets: PeerSets;
  readonly #bytes: readonly number[];
  readonly #roundRobin: RoundRobinPicker;
  #hash = 89;
  #tries = 0;

  constructor(sets: PeerSets, bytes: readonly number[]) {
    this.#sets = sets;
    this.#bytes = bytes;
    this.#roundRobin = new RoundRobinPicker(sets);
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const sets = this.#sets;
    if (this.#tries > 20 || sets.primaries.length < 2) return this.#roundRobin.pick(tried, now);
    let hash = this.#hash;
    for (;;) {
      for (const byte of this.#bytes) hash = (hash * 113 + byte) % 6271;
      const peer = peerAtWeight(sets.primaries, hash % sets.totalWeight);
      if (!tried.has(peer) && peer.available(now)) {
        this.#hash = hash;
        return chosen(peer, now);
      }
      if (++this.#tries > 20) return this.#roundRobin.pick(tried, now);
    }
  }
}

/** The `ip_hash` balancer of a group. */
export function ipHashBalancer(sets: PeerSets): Balancer {
  return { method: 'ip_hash', begin: (request: Balanced | undefined) => new IpHashPicker(sets, ipHashBytes(request?.remoteAddress ?? '')) };
}

/** The `ip_hash` directive. */
export const upstreamIpHashModule: ConfModule = {
  name: 'ngx_http_upstream_ip_hash_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'ip_hash',
      contexts: ['upstream'],
      args: [0],
      inherit: false,
      syntax: ';',
      summary: 'Passes requests from one client address (the first three octets of IPv4, all of IPv6) to the same server, as nginx hashes it.',
      default: () => false,
      defaultText: '—',
      parse: (_args, ctx) => {
        setBalancer(ctx, { method: 'ip_hash', backup: false, build: (sets) => ipHashBalancer(sets) });
        return true;
      },
    }),
  ],
};
