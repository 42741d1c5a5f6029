/**
 * Passive health and backups through the real HTTP runtime: a peer that dies mid-run is taken out
 * after max_fails, the backups take over only when every primary is out, and least_conn steers
 * around a slow peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { get, serve } from '../http/helpers.js';
import { closedPort } from '../http/proxy-upstreams.js';
import { startBackend, type Backend } from './backends.js';

describe('passive health checks and backups', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-passive-'));
  const backends: Backend[] = [];
  const backend = async (name: string): Promise<Backend> => {
    const started = await startBackend(name);
    backends.push(started);
    return started;
  };
  after(async () => {
    for (const started of backends) await started.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes a peer killed mid-run out after max_fails, and loses no request', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const logFile = join(dir, 'killed.log');
    const served = await serve(
      `http { upstream u { server 127.0.0.1:${a.port} max_fails=2 fail_timeout=30s; server 127.0.0.1:${b.port}; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; } } }`,
      dir,
      new ErrorLog([{ file: logFile, level: 'info' }]),
    );
    try {
      const before: string[] = [];
      for (let i = 0; i < 6; i++) before.push((await get(served.port, '/')).body);
      assert.deepEqual(before.sort().join(''), 'aaabbb', 'round robin before the failure');
      await a.stop();
      const afterKill: string[] = [];
      for (let i = 0; i < 20; i++) {
        const reply = await get(served.port, '/');
        assert.equal(reply.status, 200);
        afterKill.push(reply.body);
      }
      assert.ok(afterKill.every((body) => body === 'b'));
      const log = readFileSync(logFile, 'utf8');
      // Exactly max_fails connection failures, then the peer is out for fail_timeout.
      assert.equal(log.split('connect() failed (111: Connection refused) while connecting to upstream').length - 1, 2, log);
      assert.match(log, /\[warn\] \d+#0: \*\d+ upstream server temporarily disabled while connecting to upstream, client: 127\.0\.0\.1/);
      const states = served.runtime.upstreamStates().filter((state) => state.group === 'u');
      assert.equal(states.find((state) => state.peer === `127.0.0.1:${a.port}`)?.state, 'unavailable');
      assert.equal(states.find((state) => state.peer === `127.0.0.1:${b.port}`)?.state, 'up');
    } finally {
      await served.stop();
    }
  });

  it('uses the backup only when every primary is out', async () => {
    const primary = await backend('primary');
    const spare = await backend('spare');
    const dead = await closedPort();
    const served = await serve(
      `http { upstream u { server 127.0.0.1:${dead}; server 127.0.0.1:${primary.port}; server 127.0.0.1:${spare.port} backup; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; } } }`,
      dir,
    );
    try {
      for (let i = 0; i < 6; i++) assert.equal((await get(served.port, '/')).body, 'primary');
      assert.equal(spare.hits, 0);
      await primary.stop();
      for (let i = 0; i < 6; i++) assert.equal((await get(served.port, '/')).body, 'spare');
    } finally {
      await served.stop();
    }
  });

  it('least_conn sends nothing more to a peer that is still busy', async () => {
    const slow = await backend('slow');
    const fast = await backend('fast');
    slow.hold = true;
    const served = await serve(
      `http { upstream u { least_conn; server 127.0.0.1:${slow.port}; server 127.0.0.1:${fast.port}; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; proxy_read_timeout 10s; } } }`,
      dir,
    );
    try {
      const held = get(served.port, '/');
      for (let i = 0; i < 100 && slow.hits === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(slow.hits, 1, 'the first request (a tie) goes to the first peer');
      for (let i = 0; i < 10; i++) assert.equal((await get(served.port, '/')).body, 'fast');
      slow.release();
      assert.equal((await held).body, 'slow');
      assert.equal(slow.hits, 1);
    } finally {
      slow.release();
      await served.stop();
    }
  });
});
