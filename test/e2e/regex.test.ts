/**
 * Regexes end to end: hitless and Debian's nginx serve the same regex locations, server names and
 * maps side by side and answer a list of requests alike; `-t` reports a bad pattern in the same
 * words as nginx; and a pathological pattern with a request made to backtrack it does not hang a
 * worker, which keeps answering (nginx gives up at PCRE2's match limit with a 500; hitless's
 * linear-time fallback finishes the match and answers as it decides: see docs/regex.md).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NGINX, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { HITLESS_BIN } from '../helpers/bin.js';
import { MasterUnderTest, TestPrefix, freePort, startMaster } from './helpers/masters.js';

const conf = (port: number): string => `
worker_processes 1;
events {}
http {
    map $uri $section {
        "~^/m/(?<first>[a-z]+)/(?P<second>[0-9]+)$" "$first-$second-$2";
        "~*^/M/UP/(.*)$" "up-$1";
        default none;
    }
    map $uri $slow { "~^/slow/(x+x+)+y$" matched; default none; }
    server {
        listen 127.0.0.1:${port};
        server_name ~^(?P<sub>[a-z]+)\\.example\\.com$ localhost;
        location = / { return 200 "root\\n"; }
        # Static files are not what this test is about.
        location / { return 404; }
        location ~ "^/n/(?<year>\\d{4})/(?P<slug>[^/]+)$" { return 200 "$year|$slug|$1|$2|$sub\\n"; }
        location ~* ^/CASE/(.*)$ { return 200 "caseless $1\\n"; }
        location ~ (?i)^/inline/ { return 200 "inline\\n"; }
        location ~ ^/q/\\Q*.*\\E$ { return 200 "quoted\\n"; }
        location ~ ^/posix/[[:digit:][:upper:]]+$ { return 200 "posix\\n"; }
        location ~ "^/hex/\\x{41}\\h?\\e?$" { return 200 "hex\\n"; }
        location ~ \\.php$ { return 200 "php $uri\\n"; }
        location ~ ^/dot/.$ { return 200 "dot\\n"; }
        location ~ ^/(a+)+$ { return 200 "a\\n"; }
        location /m/ { return 200 "map $section|$first|$second\\n"; }
        location /slow/ { return 200 "slow $slow\\n"; }
    }
}
`;

/** One GET with its own Host, on a new connection, bounded by a timeout. */
function fetch(port: number, path: string, host = 'localhost', timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

const requests: readonly [string, string?][] = [
  ['/n/2024/hello', 'www.example.com'],
  ['/n/24/hello'],
  ['/case/Hello'],
  ['/CaSe/x'],
  ['/INLINE/x'],
  ['/q/*.*'],
  ['/q/ab'],
  ['/posix/12A'],
  ['/posix/12a'],
  ['/hex/A'],
  ['/hex/A%20%1B'],
  ['/hex/a'],
  ['/x.php'],
  ['/x.php%0A'],
  ['/x.php%0A%0A'],
  ['/x.PHP'],
  ['/dot/%0D'],
  ['/dot/%0A'],
  ['/m/abc/42'],
  ['/m/abc/x'],
  ['/m/up/Yes'],
  ['/aaaa'],
  [`/slow/${'x'.repeat(40)}`],
];

describe('regexes: hitless and nginx side by side', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let nginx: NginxInstance | undefined;
  let hitlessPort: number;
  let nginxPort: number;

  before(async () => {
    hitlessPort = await freePort();
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': conf(nginxPort).replace('worker_processes 1;', '') }, nginxPort);
    master = await startMaster({ prefix, conf: `error_log logs/error.log notice;\n${conf(hitlessPort)}`, port: hitlessPort, program: 'hitless' });
  });
  after(async () => {
    await master?.stop();
    await nginx?.stop();
    prefix.remove();
  });

  it('answers every request of the list as nginx does', async () => {
    for (const [path, host] of requests) {
      const [ours, theirs] = [await fetch(hitlessPort, path, host), await fetch(nginxPort, path, host)];
      // Error pages name the server; only a 200's body is compared.
      assert.deepEqual(ours.status === 200 ? ours : ours.status, theirs.status === 200 ? theirs : theirs.status, path);
    }
  });

  it('keeps answering while a request makes a configured regex backtrack catastrophically', async () => {
    const hostile = `/${'a'.repeat(40)}!`;
    for (let i = 0; i < 3; i++) {
      // The regex does not match, so `location /` answers 404 (nginx: 500 at PCRE2's match limit).
      assert.equal((await fetch(hitlessPort, hostile)).status, 404);
      assert.deepEqual(await fetch(hitlessPort, `/slow/${'x'.repeat(5000)}`), { status: 200, body: 'slow none\n' });
      assert.deepEqual(await fetch(hitlessPort, '/'), { status: 200, body: 'root\n' });
    }
    assert.equal((await fetch(nginxPort, hostile)).status, 500);
  });
});

describe('regexes: -t reports a bad pattern as nginx does', () => {
  const prefix = new TestPrefix();
  after(() => prefix.remove());

  const testWith = (program: 'nginx' | 'hitless', pattern: string): string => {
    const file = join(prefix.dir, 'conf', `${program}.conf`);
    writeFileSync(file, `events {}\nhttp {\nserver {\nlocation ~ "${pattern}" { }\n}\n}\n`);
    const args = ['-t', '-p', `${prefix.dir}/`, '-c', file, '-g', `pid ${join(prefix.dir, 'logs', `${program}.pid`)}; error_log stderr;`];
    const result = program === 'nginx'
      ? spawnSync(NGINX, args, { encoding: 'utf8', timeout: 20_000 })
      : spawnSync(process.execPath, [HITLESS_BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
    const line = result.stderr.split('\n').find((text) => text.includes('[emerg]')) ?? result.stderr;
    // nginx's line has a time and pid before [emerg]; both name their own file.
    return line.replace(/^.*\[emerg\] (?:\d+#\d+: )?/, '').replace(`${program}.conf`, 'X.conf');
  };

  for (const pattern of ['(abc', 'a)b', '[abc', '(?<n>a)(?<n>b)', '*a', '\\\\k<zz>', '[z-a]', '(?z)', '(?<1a>x)', '\\\\x{100}']) {
    it(`"${pattern}"`, () => {
      const theirs = testWith('nginx', pattern);
      assert.match(theirs, /^pcre2_compile\(\) failed: /);
      assert.equal(testWith('hitless', pattern), theirs);
    });
  }

  it('warns at [warn] for a pattern the backtracking guard cannot cover, and still accepts it', () => {
    const file = join(prefix.dir, 'conf', 'unguarded.conf');
    writeFileSync(file, 'events {}\nhttp {\nserver {\nlocation ~ ^/(?!api/) { }\n}\n}\n');
    const args = ['-t', '-p', `${prefix.dir}/`, '-c', file, '-g', `pid ${join(prefix.dir, 'logs', 'unguarded.pid')}; error_log stderr;`];
    const result = spawnSync(process.execPath, [HITLESS_BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /\[warn\] regex "\^\/\(\?!api\/\)" is not protected against catastrophic backtracking \(it uses a lookahead or lookbehind assertion, .*\) in .*unguarded\.conf:4/);
  });
});
