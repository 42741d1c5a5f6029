/**
 * `ewma`: the peak EWMA's arithmetic with pinned clocks, the directive's checks, and real
 * upstreams where one slow peer gets few of the requests that round robin would share evenly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { peerSets } from '../../src/upstream/balancers/balancer.js';
import { ewmaBalancer, PeakEwma } from '../../src/upstream/balancers/ewma.js';
import { Peer } from '../../src/upstream/peer.js';
import { errorOf, get, load, serve } from '../http/helpers.js';
import { startBackend, type Backend } from './backends.js';

function peer(name: string): Peer {
  return new Peer({ name, address: { kind: 'tcp', host: '127.0.0.1', port: 1 }, server: name, weight: 1, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false });
}

describe('peak EWMA', () => {
  it('takes a slower sample at once and lets a faster one pull the estimate down with time', () => {
    const ewma = new PeakEwma(10_000);
    ewma.observe(10, 0);
    assert.equal(ewma.estimate(0), 10);
    ewma.observe(100, 1); // peak: replaces
    assert.equal(ewma.estimate(1), 100);
    ewma.observe(10, 1); // no time elapsed: weight 1 on the old estimate
    assert.equal(ewma.estimate(1), 100);
    ewma.observe(10, 10_001); // one time constant later: e^-1 of the old, the rest from the sample
    assert.ok(Math.abs(ewma.estimate(10_001) - (100 * Math.exp(-1) + 10 * (1 - Math.exp(-1)))) < 1e-9);
  });

  it('decays towards zero without samples, so that an avoided peer is tried again', () => {
    const ewma = new PeakEwma(1_000);
    ewma.observe(200, 0);
    assert.ok(Math.abs(ewma.estimate(1_000) - 200 * Math.exp(-1)) < 1e-9);
    assert.ok(ewma.estimate(20_000) < 1e-6);
  });

  it('prefers the cheaper of its two draws: latency times (active + 1)', () => {
    const fast = peer('fast');
    const slow = peer('slow');
    const third = peer('third');
    const draws = [0, 0]; // first draw: the first usable peer; second: the first of the others
    let i = 0;
    const balancer = ewmaBalancer(peerSets([slow, fast, third]), { decayMs: 10_000 }, () => draws[i++ % 2] as number);
    balancer.observe?.(slow, 100, 0);
    balancer.observe?.(fast, 10, 0);
    balancer.observe?.(third, 10, 0);
    assert.equal(balancer.begin(undefined).pick(new Set(), 0)?.name, 'fast', 'slow (100) against fast (10)');
    fast.conns = 10; // 10 * 11 = 110 > 100 * 1
    assert.equal(balancer.begin(undefined).pick(new Set(), 0)?.name, 'slow');
    // A busy peer never sampled costs a penalty; an idle one nothing.
    const fresh = peer('fresh');
    const withFresh = ewmaBalancer(peerSets([fresh, fast]), { decayMs: 10_000 }, () => 0);
    withFresh.observe?.(fast, 10, 0);
    fast.conns = 0;
    assert.equal(withFresh.begin(undefined).pick(new Set(), 0)?.name, 'fresh');
    fresh.conns = 1;
    assert.equal(withFresh.begin(undefined).pick(new Set(), 0)?.name, 'fast');
    assert.deepEqual(withFresh.describe?.(fast, 0), { latencyMs: 10, cost: 10 });
  });

  it('checks its parameter and refuses backup, as random does', () => {
    load('http { upstream u { ewma; server 127.0.0.1:1; } upstream v { ewma decay=30s; server 127.0.0.1:1; } }');
    assert.equal(errorOf('http { upstream u { ewma decay=0; server 127.0.0.1:1; } }'), 'invalid parameter "decay=0" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { ewma fast; server 127.0.0.1:1; } }'), 'invalid parameter "fast" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { ewma; server 127.0.0.1:1; server 127.0.0.1:2 backup; } }'), 'balancing method does not support parameter "backup" in /x.conf:1');
  });
});

describe('ewma with real upstreams', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-ewma-'));
  const backends: Backend[] = [];
  after(async () => {
    for (const backend of backends) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a slow peer far fewer requests than the fast ones', async (t) => {
    for (const name of ['fast1', 'fast2', 'slow']) backends.push(await startBackend(name));
    const [fast1, fast2, slow] = backends as [Backend, Backend, Backend];
    slow.delayMs = 150;
    const served = await serve(
      `http { upstream u { ewma; server 127.0.0.1:${fast1.port}; server 127.0.0.1:${fast2.port}; server 127.0.0.1:${slow.port}; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; } } }`,
      dir,
    );
    try {
      const ROUNDS = 20;
      for (let round = 0; round < ROUNDS; round++) {
        const replies = await Promise.all(Array.from({ length: 3 }, () => get(served.port, '/')));
        for (const reply of replies) assert.equal(reply.status, 200);
      }
      const hits = `fast1=${fast1.hits} fast2=${fast2.hits} slow=${slow.hits}`;
      t.diagnostic(hits);
      assert.equal(fast1.hits + fast2.hits + slow.hits, ROUNDS * 3, hits);
      // Round robin would give each 20; the slow peer gets its first tries and then almost nothing.
      assert.ok(slow.hits <= 6, hits);
      assert.ok(fast1.hits >= 15 && fast2.hits >= 15, hits);
      const state = served.runtime.upstreamStates().find((s) => s.peer === `127.0.0.1:${slow.port}`);
      assert.equal(state?.method, 'ewma');
      assert.ok((state?.balancer?.['latencyMs'] ?? 0) > 0, JSON.stringify(state));
    } finally {
      await served.stop();
    }
  });
});
