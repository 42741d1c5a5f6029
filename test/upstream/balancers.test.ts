/**
 * The balancers against nginx's algorithms, peer by peer: round robin's smooth sequence, least_conn
 * with its weighted ties, ip_hash's octets, hash's rehash loop and the consistent ring, random two.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { peerSets, type TriedSet } from '../../src/upstream/balancers/balancer.js';
import { buildRing, findPoint } from '../../src/upstream/balancers/hash.js';
import { ipHashBalancer, ipHashBytes } from '../../src/upstream/balancers/ip-hash.js';
import { leastConnBalancer } from '../../src/upstream/balancers/least-conn.js';
import { randomBalancer } from '../../src/upstream/balancers/random.js';
import { recordOutcome, roundRobinBalancer } from '../../src/upstream/balancers/round-robin.js';
import { Peer } from '../../src/upstream/peer.js';
import type { HttpRequest } from '../../src/http/request.js';
import { errorOf, load } from '../http/helpers.js';

function peer(name: string, options: { weight?: number; backup?: boolean; down?: boolean; maxFails?: number; maxConns?: number } = {}): Peer {
  return new Peer({
    name,
    address: { kind: 'tcp', host: '127.0.0.1', port: 1 },
    server: name,
    weight: options.weight ?? 1,
    maxFails: options.maxFails ?? 1,
    failTimeoutMs: 10_000,
    maxConns: options.maxConns ?? 0,
    backup: options.backup ?? false,
    down: options.down ?? false,
  });
}

const none = (): TriedSet => new Set();

describe('balancers', () => {
  it('round robin gives nginx\'s smooth sequence for weights 5, 1, 1', () => {
    const balancer = roundRobinBalancer(peerSets([peer('a', { weight: 5 }), peer('b'), peer('c')]));
    const sequence = Array.from({ length: 14 }, () => balancer.begin(undefined).pick(none(), 1)?.name).join(' ');
    assert.equal(sequence, 'a a b a c a a a a b a c a a');
  });

  it('round robin goes to the backups only once every primary is out, and stays there for the request', () => {
    const a = peer('a');
    const b = peer('b');
    const backup = peer('backup', { backup: true });
    const balancer = roundRobinBalancer(peerSets([a, b, backup]));
    assert.equal(balancer.begin(undefined).pick(none(), 1)?.name, 'a');
    recordOutcome(a, true, 1);
    recordOutcome(b, true, 1);
    const picker = balancer.begin(undefined);
    assert.equal(picker.pick(none(), 2)?.name, 'backup');
    assert.equal(picker.pick(new Set([backup]), 3), undefined);
  });

  it('a single peer is used whatever its failures, unless it is down', () => {
    const only = peer('only');
    const sets = peerSets([only]);
    assert.equal(sets.single, true);
    recordOutcome(only, true, 1);
    assert.equal(roundRobinBalancer(sets).begin(undefined).pick(none(), 2)?.name, 'only');
    only.down = true;
    assert.equal(roundRobinBalancer(sets).begin(undefined).pick(none(), 2), undefined);
  });

  it('least_conn prefers fewer connections per weight, and breaks ties by round robin from the first tied peer', () => {
    const a = peer('a');
    const b = peer('b', { weight: 2 });
    const c = peer('c');
    const balancer = leastConnBalancer(peerSets([a, b, c]));
    a.conns = 1;
    b.conns = 1; // 1/2 per weight: the least loaded
    c.conns = 1;
    assert.equal(balancer.begin(undefined).pick(none(), 1)?.name, 'b');
    b.conns = 2; // now all equal per weight: round robin weighted 1, 2, 1 from a
    const seen = Array.from({ length: 4 }, () => balancer.begin(undefined).pick(none(), 1)?.name).sort().join('');
    assert.equal(seen, 'abbc');
  });

  it('ip_hash hashes the first three octets of IPv4 and all of IPv6, as nginx does', () => {
    assert.deepEqual(ipHashBytes('10.1.2.3'), [10, 1, 2]);
    assert.deepEqual(ipHashBytes('::ffff:10.1.2.3'), [10, 1, 2]);
    assert.deepEqual(ipHashBytes('2001:db8::1'), [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(ipHashBytes('unix:'), [0, 0, 0]);
    // hash = 89; for each octet hash = (hash * 113 + octet) % 6271; 10.1.2 -> 2726; 2726 % 3 = 2.
    let hash = 89;
    for (const octet of [10, 1, 2]) hash = (hash * 113 + octet) % 6271;
    const peers = [peer('a'), peer('b'), peer('c')];
    const balancer = ipHashBalancer(peerSets(peers));
    const request = { remoteAddress: '10.1.2.3' } as HttpRequest;
    assert.equal(balancer.begin(request).pick(none(), 1)?.name, ['a', 'b', 'c'][hash % 3]);
    assert.equal(balancer.begin({ remoteAddress: '10.1.2.200' } as HttpRequest).pick(none(), 1)?.name, ['a', 'b', 'c'][hash % 3], 'the last octet does not count');
  });

  it('ip_hash moves on from an unusable peer and keeps the client\'s other requests where they were', () => {
    const peers = [peer('a'), peer('b'), peer('c')];
    const balancer = ipHashBalancer(peerSets(peers));
    const request = { remoteAddress: '192.0.2.7' } as HttpRequest;
    const first = balancer.begin(request).pick(none(), 1) as Peer;
    first.down = true;
    const second = balancer.begin(request).pick(none(), 1);
    assert.ok(second !== undefined && second !== first);
  });

  it('builds the consistent ring with 160 points per weight, sorted', () => {
    const ring = buildRing([peer('127.0.0.1:8080'), peer('127.0.0.1:8081', { weight: 2 })]);
    assert.ok(ring.length > 470 && ring.length <= 480);
    for (let i = 1; i < ring.length; i++) assert.ok((ring[i - 1]?.hash ?? 0) < (ring[i]?.hash ?? 0));
    assert.equal(findPoint(ring, 0), 0);
    assert.equal(findPoint(ring, 0xffffffff), ring.length);
  });

  it('random two spreads load and prefers the less loaded of two draws', () => {
    const peers = [peer('a'), peer('b'), peer('c'), peer('d')];
    const balancer = randomBalancer(peerSets(peers), { two: true });
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const chosen = balancer.begin(undefined).pick(none(), 1) as Peer;
      chosen.conns++;
      counts.set(chosen.name, (counts.get(chosen.name) ?? 0) + 1);
    }
    // With the lesser of two, connections stay within a few of each other.
    const values = [...counts.values()];
    assert.equal(values.length, 4);
    assert.ok(Math.max(...values) - Math.min(...values) <= 4, JSON.stringify([...counts]));
  });

  it('random two breaks a tie for the second draw, and keeps the first only when the second is more loaded (ngx_http_upstream_get_random2_peer)', () => {
    const a = peer('a');
    const b = peer('b', { weight: 2 });
    const c = peer('c');
    // Weights 1, 2, 1: draws 0 -> a, 1 and 2 -> b, 3 -> c.
    const sequence = (draws: number[]) => {
      let i = 0;
      return () => draws[i++ % draws.length] as number;
    };
    const pick = (draws: number[]) => randomBalancer(peerSets([a, b, c]), { two: true }, sequence(draws)).begin(undefined).pick(none(), 1)?.name;
    assert.equal(pick([0, 3]), 'c', 'equal load: the second draw wins');
    assert.equal(pick([3, 0]), 'a', 'equal load: the second draw wins');
    a.conns = 1;
    assert.equal(pick([0, 3]), 'c', 'the second is less loaded');
    assert.equal(pick([3, 0]), 'c', 'the second (a) is strictly more loaded: the first stays');
    b.conns = 2; // 2 per weight 2 = 1 per weight, as loaded as a
    assert.equal(pick([0, 1]), 'b', 'equal per weight: the second draw wins');
    assert.equal(pick([1, 0]), 'a', 'equal per weight: the second draw wins');
    // The same peer drawn twice is drawn again (and counts as a try), it does not compare with itself.
    assert.equal(pick([3, 3, 3, 1]), 'c', 'b (1 per weight) is more loaded than c (0)');
    // 21 unusable draws: round robin takes over, as nginx's `++rp->tries > 20` does.
    assert.ok(['a', 'b', 'c'].includes(pick([0]) ?? ''));
  });

  it('least_conn runs its round robin among equally loaded peers only, from the first of them on', () => {
    const a = peer('a');
    const b = peer('b');
    const c = peer('c');
    const d = peer('d');
    const balancer = leastConnBalancer(peerSets([a, b, c, d]));
    a.conns = 2;
    b.conns = 1;
    c.conns = 2;
    d.conns = 1;
    // b and d tie; a and c never take part, whatever their current_weight.
    a.currentWeight = 100;
    const seen = Array.from({ length: 4 }, () => balancer.begin(undefined).pick(none(), 1)?.name);
    assert.deepEqual(seen.sort(), ['b', 'b', 'd', 'd']);
    assert.equal(a.currentWeight, 100);
    // A tried peer is left out of both loops.
    assert.equal(balancer.begin(undefined).pick(new Set([b]), 1)?.name, 'd');
  });
});

describe('balancing methods in the configuration', () => {
  it('refuses backup with hash, ip_hash and random, in nginx\'s words', () => {
    for (const method of ['ip_hash', 'hash $arg_k', 'hash $arg_k consistent', 'random', 'random two least_conn']) {
      assert.equal(
        errorOf(`http { upstream u { ${method}; server 127.0.0.1:1; server 127.0.0.1:2 backup; } }`),
        'balancing method does not support parameter "backup" in /x.conf:1',
      );
    }
  });

  it('accepts backup with least_conn, and a backup declared before the method (as nginx does)', () => {
    load('http { upstream u { least_conn; server 127.0.0.1:1; server 127.0.0.1:2 backup; } }');
    load('http { upstream u { server 127.0.0.1:1; server 127.0.0.1:2 backup; ip_hash; } }');
  });

  it('refuses bad arguments as nginx does', () => {
    assert.equal(errorOf('http { upstream u { hash $a foo; server 127.0.0.1:1; } }'), 'invalid parameter "foo" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { hash $nope; server 127.0.0.1:1; } }'), 'unknown "nope" variable');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; hash; } }'), 'invalid number of arguments in "hash" directive in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; ip_hash x; } }'), 'invalid number of arguments in "ip_hash" directive in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; least_conn x; } }'), 'invalid number of arguments in "least_conn" directive in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; random one; } }'), 'invalid parameter "one" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; random least_conn; } }'), 'invalid parameter "least_conn" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; random two least_time; } }'), 'invalid parameter "least_time" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; random two least_conn x; } }'), 'invalid number of arguments in "random" directive in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1 max_conns=x; } }'), 'invalid parameter "max_conns=x" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1 weight=0; } }'), 'invalid parameter "weight=0" in /x.conf:1');
  });

  it('checks zone as nginx does', () => {
    load('http { upstream u { zone z 64k; server 127.0.0.1:1; } upstream v { zone z; server 127.0.0.1:2; } }');
    assert.equal(errorOf('http { upstream u { zone z; server 127.0.0.1:1; } }'), 'zero size shared memory zone "z"');
    assert.equal(errorOf('http { upstream u { zone z 1k; server 127.0.0.1:1; } }'), 'zone "z" is too small in /x.conf:1');
    assert.equal(errorOf('http { upstream u { zone z big; server 127.0.0.1:1; } }'), 'invalid zone size "big" in /x.conf:1');
    assert.equal(
      errorOf('http { upstream u { zone z 64k; server 127.0.0.1:1; } upstream v { zone z 128k; server 127.0.0.1:1; } }'),
      'the size 131072 of shared memory zone "z" conflicts with already declared size 65536 in /x.conf:1',
    );
    assert.equal(
      errorOf('http { limit_req_zone $binary_remote_addr zone=z:64k rate=1r/s; upstream u { zone z 64k; server 127.0.0.1:1; } }'),
      'the shared memory zone "z" is already declared for a different use in /x.conf:1',
    );
  });
});
