/** error_log in http, server and location blocks: hitless says at -t that it does not apply them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { load } from './helpers.js';

describe('error_log below the main level', () => {
  it('is warned about at -t, not accepted silently', () => {
    const config = load('http { error_log /tmp/h.log; server { error_log /tmp/s.log info; location / { error_log /tmp/l.log; } } }');
    const warnings = config.warnings.map((w) => w.message);
    for (const level of ['http', 'server', 'location']) {
      assert.ok(warnings.includes(`"error_log" in a "${level}" block is not applied by hitless: its messages go to the main level's error_log in /x.conf:1`), warnings.join('\n'));
    }
  });
});
