/** error_log below the main level: taken in http, server and location blocks and in stream and its servers, the nearest level's applying. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ownErrorLog } from '../../src/conf/core-module.js';
import { load } from './helpers.js';

describe('error_log below the main level', () => {
  it('is taken in http, server and location blocks without a warning, each level with its own files and levels', () => {
    const config = load('http { error_log /tmp/h.log; server { error_log /tmp/s.log info; error_log /tmp/s2.log debug; location / { } location /l { error_log /tmp/l.log crit; } } }');
    assert.deepEqual(config.warnings.map((w) => w.message).filter((m) => m.includes('error_log')), []);
    const http = config.main.child('http');
    const server = http?.blocks[0];
    const [inherits, own] = server?.blocks ?? [];
    assert.ok(http !== undefined && server !== undefined && inherits !== undefined && own !== undefined);
    assert.deepEqual(ownErrorLog(http), [{ file: '/tmp/h.log', level: 'error' }]);
    assert.deepEqual(ownErrorLog(server), [{ file: '/tmp/s.log', level: 'info' }, { file: '/tmp/s2.log', level: 'debug' }]);
    assert.deepEqual(ownErrorLog(inherits), ownErrorLog(server));
    assert.deepEqual(ownErrorLog(own), [{ file: '/tmp/l.log', level: 'crit' }]);
  });

  it('leaves a level without one anywhere above it to the main log', () => {
    const config = load('error_log /tmp/main.log; http { server { location / { } } }');
    const location = config.main.child('http')?.blocks[0]?.blocks[0];
    assert.ok(location !== undefined);
    assert.equal(ownErrorLog(location), undefined);
  });

  it('is taken in stream blocks and their servers without a warning', () => {
    const config = load('stream { error_log /tmp/st.log; server { listen 127.0.0.1:1; error_log /tmp/ss.log warn; proxy_pass 127.0.0.1:2; } server { listen 127.0.0.1:3; proxy_pass 127.0.0.1:2; } }');
    assert.deepEqual(config.warnings.map((w) => w.message).filter((m) => m.includes('error_log')), []);
    const [own, inherits] = config.main.child('stream')?.blocks ?? [];
    assert.ok(own !== undefined && inherits !== undefined);
    assert.deepEqual(ownErrorLog(own), [{ file: '/tmp/ss.log', level: 'warn' }]);
    assert.deepEqual(ownErrorLog(inherits), [{ file: '/tmp/st.log', level: 'error' }]);
  });
});
