/**
 * `proxy_http_version` refused at -t in the words of the real nginx (ngx_conf_set_enum_slot():
 * `invalid value "3"`, nothing more), side by side with Debian's. Debian's nginx (1.22) predates
 * `proxy_http_version 2` (1.29), so only values both refuse are compared; test/http/proxy-h2.test.ts
 * covers 2 itself.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { configTest } from './helpers/side-by-side.js';

/** The [emerg] line without nginx's timestamp and pid, or hitless's prefix. */
function emergOf(output: string): string | undefined {
  return /\[emerg\] (?:\d+#\d+: )?(.*)$/m.exec(output)?.[1];
}

describe('proxy_http_version at -t, side by side with nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-version-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const value of ['3', '2.0', '1']) {
    it(`refuses "${value}" as nginx does`, () => {
      const conf = join(dir, `bad-${value}.conf`);
      writeFileSync(conf, `events {}\nhttp {\n    proxy_http_version ${value};\n}\n`);
      const args = ['-p', `${dir}/`, '-c', conf, '-g', `error_log stderr; pid ${join(dir, 'pid')};`];
      const nginx = configTest('nginx', args);
      const hitless = configTest('hitless', args);
      assert.notEqual(nginx.status, 0, nginx.output);
      assert.equal(hitless.status, nginx.status, hitless.output);
      assert.equal(emergOf(hitless.output), emergOf(nginx.output));
      assert.equal(emergOf(hitless.output), `invalid value "${value}" in ${conf}:3`);
    });
  }
});
