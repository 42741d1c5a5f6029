/**
 * The main and events part of Debian's stock /etc/nginx/nginx.conf (`user www-data;
 * worker_processes auto; pid; include modules-enabled/*.conf; events { worker_connections 768; }`),
 * on a copy whose http block is empty: Debian's nginx and hitless both pass `-t`, with no warning
 * (worker_connections is enforced, test/e2e/worker-connections.test.ts). A dynamic module
 * hitless does not have fails with nginx's dlopen() message instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { masterCommand } from './helpers/masters.js';

const NGINX = '/usr/sbin/nginx';

function run(command: string, args: readonly string[]): { status: number | null; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stderr: result.stderr };
}

describe('Debian\'s nginx.conf: main and events', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-debian-'));
  const conf = join(dir, 'nginx.conf');
  const modules = join(dir, 'modules-enabled');

  before(() => {
    assert.ok(existsSync('/etc/nginx/nginx.conf') && existsSync(NGINX), 'Debian\'s nginx is installed');
    cpSync('/etc/nginx', dir, { recursive: true, dereference: true });
    const stock = readFileSync(conf, 'utf8');
    // The http part is other modules' business: keep everything before it, and an empty block.
    const main = stock.slice(0, stock.indexOf('\nhttp {')).replaceAll('/etc/nginx/modules-enabled', modules);
    assert.match(main, /^user www-data;$/m);
    assert.match(main, /^\s*worker_connections 768;$/m);
    writeFileSync(conf, `${main}\nhttp {\n}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('passes -t with the stream module only, as with Debian\'s nginx', () => {
    for (const file of readdirSync(modules)) if (!/stream/.test(readFileSync(join(modules, file), 'utf8'))) rmSync(join(modules, file));
    assert.match(readdirSync(modules).map((file) => readFileSync(join(modules, file), 'utf8')).join(''), /load_module modules\/ngx_stream_module\.so;/);
    const nginx = run(NGINX, ['-t', '-c', conf]);
    assert.equal(nginx.status, 0, nginx.stderr);
    const hitless = run(process.execPath, [...masterCommand('hitless'), '-t', '-c', conf]);
    assert.equal(hitless.stderr, [
      `hitless: the configuration file ${conf} syntax is ok`,
      `hitless: configuration file ${conf} test is successful`,
      '',
    ].join('\n'));
    assert.equal(hitless.status, 0);
  });

  it('fails -t, in dlopen()\'s words, on a module hitless does not have', () => {
    const extra = join(modules, '50-mod-http-geoip.conf');
    writeFileSync(extra, 'load_module modules/ngx_http_geoip_module.so;\n');
    try {
      const hitless = run(process.execPath, [...masterCommand('hitless'), '-t', '-p', '/usr/share/nginx/', '-c', conf]);
      const path = '/usr/share/nginx/modules/ngx_http_geoip_module.so';
      assert.equal(hitless.stderr.split('\n')[0], `hitless: [emerg] dlopen() "${path}" failed (${path}: cannot open shared object file: No such file or directory) in ${extra}:1`);
      assert.equal(hitless.status, 1);
    } finally {
      rmSync(extra, { force: true });
    }
  });
});
