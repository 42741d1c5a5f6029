/**
 * The downtime of upstream peers kept by the master: the union of every source's windows (two
 * workers with the same peer out count once), each worker's window counted up to its latest
 * report only, so the total never goes back; health check windows open and close on events.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerDowntime } from '../../src/upstream/peer-downtime.js';

const seconds = (downtime: PeerDowntime, now: number, peer = 'p:1'): number => downtime.totals(now).find((total) => total.peer === peer)?.seconds ?? 0;

describe('peer downtime', () => {
  it('counts overlapping windows of two workers once', () => {
    const downtime = new PeerDowntime();
    downtime.report('1', 1_100, [['g', 'p:1', 1_000, 11_000]], 1_100);
    downtime.report('2', 1_200, [['g', 'p:1', 1_050, 11_050]], 1_200);
    assert.equal(seconds(downtime, 1_200), 0.2);
    downtime.report('1', 3_000, [['g', 'p:1', 1_000, 11_000]], 3_000);
    downtime.report('2', 3_000, [['g', 'p:1', 1_050, 11_050]], 3_000);
    assert.equal(seconds(downtime, 3_000), 2);
  });

  it('counts a window only up to its latest report, and a window cut short where it was last known', () => {
    const downtime = new PeerDowntime();
    downtime.report('1', 2_000, [['g', 'p:1', 1_000, 11_000]], 2_000);
    // A scrape later than the report: fail_timeout says 11 s, but only 2 s are known.
    assert.equal(seconds(downtime, 5_000), 1);
    // The peer came back between the reports: the window is left out, counted to its last report.
    downtime.report('1', 2_100, [], 2_100);
    assert.equal(seconds(downtime, 9_000), 1);
    // A success ended a later window at 4.5 s, reported once with its end.
    downtime.report('1', 4_100, [['g', 'p:1', 4_000, 14_000]], 4_100);
    downtime.report('1', 4_600, [['g', 'p:1', 4_000, 4_500]], 4_600);
    assert.equal(seconds(downtime, 20_000), 1.5);
  });

  it('never goes back, whatever order the reports come in', () => {
    const downtime = new PeerDowntime();
    let previous = 0;
    const check = (now: number): void => {
      const total = seconds(downtime, now);
      assert.ok(total >= previous, `${previous} -> ${total}`);
      previous = total;
    };
    downtime.report('1', 1_000, [['g', 'p:1', 500, 10_500]], 1_000);
    check(1_050);
    downtime.report('2', 1_100, [['g', 'p:1', 200, 10_200]], 1_100);
    check(1_150);
    downtime.report('1', 1_300, [['g', 'p:1', 500, 1_250]], 1_300);
    check(1_350);
    downtime.retire('2', 1_400);
    check(1_450);
    check(50_000);
    // [500, 1250] of worker 1 and [1000, 1100] of worker 2: worker 2's [200, 500] came after 1 s
    // had been counted, and is the part a late report loses (docs/observability.md).
    assert.equal(previous, 0.75);
  });

  it('keeps a retired worker\'s counted time and ends its open window', () => {
    const downtime = new PeerDowntime();
    downtime.report('1', 3_000, [['g', 'p:1', 1_000, 11_000]], 3_000);
    downtime.retire('1', 3_100);
    assert.equal(seconds(downtime, 60_000), 2);
  });

  it('counts the health check\'s windows from its events, with a worker\'s on top once', () => {
    const downtime = new PeerDowntime();
    downtime.healthDown('g', 'p:1', 1_000);
    assert.equal(downtime.healthIsDown('g', 'p:1'), true);
    assert.equal(seconds(downtime, 2_500), 1.5);
    downtime.report('1', 3_000, [['g', 'p:1', 2_000, 3_000]], 3_000);
    downtime.healthUp('g', 'p:1', 4_000);
    assert.equal(downtime.healthIsDown('g', 'p:1'), false);
    assert.deepEqual(downtime.healthDownPeers(), []);
    assert.equal(seconds(downtime, 9_000), 3);
    assert.equal(seconds(downtime, 9_000, 'p:2'), 0);
  });
});
