/**
 * Active health checks: the checker (which the master runs) and the runtime (which a worker
 * runs) in one process, joined by the same table the IPC message fills. A peer failing its check
 * gets no user request; a recovered one rejoins after `passes`; `match` blocks decide.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { ActiveHealthChecks } from '../../src/upstream/health/active.js';
import { localServingState } from '../../src/http/serving-state.js';
import { errorOf, get, load, serve, type Served } from '../http/helpers.js';
import { startBackend, type Backend } from './backends.js';

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('active health checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-active-'));
  const backends: Backend[] = [];
  const checks: ActiveHealthChecks[] = [];
  const runtimes: Served[] = [];
  after(async () => {
    for (const check of checks) check.close();
    for (const served of runtimes) await served.stop();
    for (const backend of backends) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Serves `text` and starts its checker, as a master and a worker would. */
  async function start(text: string, logName: string): Promise<{ served: Served; check: ActiveHealthChecks; log: () => string }> {
    const logFile = join(dir, logName);
    const log = new ErrorLog([{ file: logFile, level: 'info' }]);
    // The checker's table reaches the runtime's state, as the master's reaches each worker's.
    const state = localServingState();
    const served = await serve(text, dir, log, state);
    runtimes.push(served);
    const check = new ActiveHealthChecks({ log: () => log, onChange: (snapshot) => state.upstreams.health.replace(snapshot) });
    checks.push(check);
    check.configure(load(text, dir));
    return { served, check, log: () => readFileSync(logFile, 'utf8') };
  }

  it('keeps a peer that fails its check from every user request, and brings it back after passes', async () => {
    const a = await startBackend('a');
    const b = await startBackend('b');
    backends.push(a, b);
    const { served, check, log } = await start(
      `http { upstream u { server 127.0.0.1:${a.port} max_fails=0; server 127.0.0.1:${b.port} max_fails=0; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u; health_check interval=50ms fails=2 passes=3 uri=/health; } } }`,
      'checks.log',
    );
    const stateOf = (peer: Backend): string | undefined => check.states().find((state) => state.peer === `127.0.0.1:${peer.port}`)?.state;
    await until('both peers checked', () => check.states().every((state) => state.checks >= 1));
    const spread = new Set<string>();
    for (let i = 0; i < 4; i++) spread.add((await get(served.port, '/')).body);
    assert.deepEqual([...spread].sort(), ['a', 'b']);

    a.healthStatus = 503;
    await until('a to be unhealthy', () => stateOf(a) === 'unhealthy');
    const hitsBefore = a.hits;
    for (let i = 0; i < 10; i++) assert.equal((await get(served.port, '/')).body, 'b');
    assert.equal(a.hits, hitsBefore, 'an unhealthy peer got a user request');
    assert.match(log(), new RegExp(`\\[warn\\] \\d+#0: peer is unhealthy while checking status code, health check "" of peer 127\\.0\\.0\\.1:${a.port} in upstream "u": status 503`));
    assert.equal(served.runtime.upstreamStates().find((state) => state.peer === `127.0.0.1:${a.port}`)?.state, 'unhealthy');

    a.healthStatus = 200;
    await until('a to recover', () => stateOf(a) === 'up');
    assert.ok((check.states().find((state) => state.peer === `127.0.0.1:${a.port}`)?.passes ?? 0) >= 3);
    assert.match(log(), /\[notice\] \d+#0: peer is healthy while checking status code/);
    const back = new Set<string>();
    for (let i = 0; i < 4; i++) back.add((await get(served.port, '/')).body);
    assert.deepEqual([...back].sort(), ['a', 'b']);
  });

  it('a peer stopped between requests gets no user request once its check fails', async () => {
    const a = await startBackend('a');
    const b = await startBackend('b');
    backends.push(a, b);
    const { served, check, log } = await start(
      `http { upstream u2 { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u2; health_check interval=50ms; } } }`,
      'stopped.log',
    );
    await until('both peers checked', () => check.states().every((state) => state.checks >= 1));
    await a.stop();
    await until('a to be unhealthy', () => check.states().find((state) => state.peer === `127.0.0.1:${a.port}`)?.state === 'unhealthy');
    for (let i = 0; i < 10; i++) assert.equal((await get(served.port, '/')).body, 'b');
    assert.doesNotMatch(log(), /connect\(\) failed .* while connecting to upstream, client/, 'a user request went to the stopped peer');
    assert.match(log(), /peer is unhealthy while connecting to upstream, health check "" of peer .*: connect\(\) failed \(111: Connection refused\)/);
    await a.restart();
    await until('a to recover', () => check.states().find((state) => state.peer === `127.0.0.1:${a.port}`)?.state === 'up');
  });

  it('judges responses by a match block', async () => {
    const a = await startBackend('good');
    const b = await startBackend('bad');
    backends.push(a, b);
    const { check } = await start(
      `http {
        match healthy { status 200-299; header Content-Type ~ text/plain; header X-Backend != bad; body ~ "health of"; }
        upstream u3 { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://u3; health_check interval=50ms match=healthy uri=/health; } } }`,
      'match.log',
    );
    await until('bad to be unhealthy', () => check.states().some((state) => state.state === 'unhealthy'));
    assert.deepEqual(
      check.states().map((state) => state.state),
      ['up', 'unhealthy'],
    );
  });

  it('keeps a group\'s checker and its states across a reload when the group is unchanged', async () => {
    const a = await startBackend('a');
    backends.push(a);
    const dead = await startBackend('dead');
    await dead.stop();
    const text = (extra: string): string => `http { upstream kept { server 127.0.0.1:${a.port}; server 127.0.0.1:${dead.port}; }
      upstream other { server 127.0.0.1:${a.port}; }
      server { listen 127.0.0.1:8080; location / { proxy_pass http://kept; health_check interval=1h; } ${extra} } }`;
    const log = new ErrorLog([]);
    const check = new ActiveHealthChecks({ log: () => log, onChange: () => undefined });
    checks.push(check);
    check.configure(load(text(''), dir));
    await until('the dead peer to be unhealthy', () => check.states().some((state) => state.state === 'unhealthy'));
    const before = check.states();
    check.configure(load(text('location /o { proxy_pass http://other; health_check interval=1h; }'), dir));
    // interval=1h: a new checker would have started with every peer up and probed again.
    const kept = check.states().filter((state) => state.group === 'kept');
    assert.deepEqual(kept, before);
    assert.equal(check.states().filter((state) => state.group === 'other').length, 1);
  });

  it('refuses misplaced or malformed health checks', () => {
    assert.equal(errorOf('http { server { location / { health_check; } } }'), '"health_check" requires "proxy_pass" to an upstream group in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; } server { location / { proxy_pass http://u; health_check fails=0; } } }'), 'invalid parameter "fails=0" in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1:1; } server { location / { proxy_pass http://u; health_check match=nope; } } }'), 'match "nope" not found in /x.conf:1');
    assert.equal(errorOf('http { match m { status 2xx; } }'), 'invalid status "2xx" in /x.conf:1');
    assert.equal(errorOf('http { match m { bogus; } }'), 'unknown directive "bogus" in /x.conf:1');
    assert.equal(errorOf('http { health_check; }'), '"health_check" directive is not allowed here in /x.conf:1');
  });
});
