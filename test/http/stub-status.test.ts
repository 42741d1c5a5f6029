import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configureArguments } from '../../src/cli/version.js';
import { stubStatusBody } from '../../src/http/stub-status-module.js';
import { createRegistry } from '../../src/modules.js';
import { errorOf, load } from './helpers.js';

describe('stub_status (ngx_http_stub_status_module)', () => {
  it('takes no argument or one, which it ignores (the old `stub_status on;`), in server and location', () => {
    for (const line of ['stub_status;', 'stub_status on;', 'stub_status off;']) {
      const config = load(`http { server { location /s { ${line} } } }`);
      assert.equal(config.warnings.length, 0, line);
    }
    load('http { server { stub_status; } }');
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.equal(errorOf('http { stub_status; }'), '"stub_status" directive is not allowed here in /x.conf:1');
    assert.equal(errorOf('http { server { location / { if ($uri) { stub_status; } } } }'), '"stub_status" directive is not allowed here in /x.conf:1');
    assert.equal(errorOf('http { server { location / { stub_status a b; } } }'), 'invalid number of arguments in "stub_status" directive in /x.conf:1');
  });

  it('prints the page as ngx_http_stub_status_handler() does', () => {
    assert.equal(
      stubStatusBody({ active: 3, accepted: 10, handled: 9, requests: 20, reading: 1, writing: 1, waiting: 1 }),
      'Active connections: 3 \nserver accepts handled requests\n 10 9 20 \nReading: 1 Writing: 1 Waiting: 1 \n',
    );
  });

  it('is in -V as --with-http_stub_status_module', () => {
    assert.match(configureArguments(createRegistry()), / --with-http_stub_status_module( |$)/);
  });
});
