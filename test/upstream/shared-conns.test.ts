import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MasterPeerConns } from '../../src/upstream/shared-peers.js';

describe('MasterPeerConns: every worker\'s active connections to zone-shared peers', () => {
  const conns = (count: number) => ({ type: 'upstream-conns' as const, group: 'lc', peer: '127.0.0.1:1', conns: count });
  const others = (count: number) => ({ type: 'upstream-other-conns' as const, group: 'lc', peer: '127.0.0.1:1', conns: count });

  it('tells each other worker the sum of the rest, and a new worker the counts so far', () => {
    const master = new MasterPeerConns<string>();
    const workers = new Set(['w1', 'w2', 'w3']);
    assert.deepEqual(master.apply('w1', conns(2), workers), [['w2', others(2)], ['w3', others(2)]]);
    assert.deepEqual(master.apply('w2', conns(1), workers), [['w1', others(1)], ['w3', others(3)]]);
    assert.deepEqual(master.snapshot('w4'), [others(3)]);
    assert.deepEqual(master.apply('w1', conns(0), workers), [['w2', others(0)], ['w3', others(1)]]);
  });

  it('forgets a worker that exited: its connections ended with it', () => {
    const master = new MasterPeerConns<string>();
    const workers = new Set(['w1', 'w2']);
    master.apply('w1', conns(3), workers);
    workers.delete('w1');
    assert.deepEqual(master.remove('w1', workers), [['w2', others(0)]]);
    assert.deepEqual(master.snapshot('w3'), []);
  });
});
