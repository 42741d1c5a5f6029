/** A directive nginx removed (`ssl on`): refused with nginx's own message, and hitless says what replaced it. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configTest } from './helpers/side-by-side.js';

describe('removed directives, side by side with nginx', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-removed-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses "ssl on" as nginx does, then names the listen parameter that replaced it', () => {
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, 'error_log stderr;\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:8443;\n    ssl on;\n  }\n}\n');
    const nginx = configTest('nginx', ['-p', `${dir}/`, '-c', conf]);
    const hitless = configTest('hitless', ['-p', `${dir}/`, '-c', conf]);
    // Debian's nginx is 1.22, which still knew "ssl" (deprecated): 1.25.1 removed it.
    assert.match(nginx.output, /the "ssl" directive is deprecated|unknown directive "ssl"/);
    assert.equal(hitless.status, 1);
    assert.match(hitless.output, new RegExp(`\\[emerg\\] unknown directive "ssl" in ${conf.replace(/[.]/g, '\\.')}:6\\n`));
    assert.match(hitless.output, /\[notice\] the "ssl" directive was removed in nginx 1\.25\.1: use the "ssl" parameter of "listen" instead/);
  });
});
