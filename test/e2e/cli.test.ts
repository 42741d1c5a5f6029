import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT, runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';

describe('bin/hitless: nginx\'s command line', () => {
  const dir = tempDir({
    'conf/hitless.conf': 'events {}\nhttp {\n  include conf.d/*.conf;\n}\n',
    'conf/conf.d/app.conf': 'server {\n  location / {\n    proxiy_pass http://x;\n  }\n}\n',
    'good/hitless.conf': 'events {}\nhttp {\n  include app.conf;\n}\n',
    'good/app.conf': 'server { }\n',
    'nopid/hitless.conf': 'pid run/none.pid;\nevents {}\n',
    'badpid/hitless.conf': 'pid run/bad.pid;\nevents {}\n',
    'badpid/run/bad.pid': 'twelve\n',
    'warn/hitless.conf': 'events {}\nhttp {\n  proxy_temp_path /tmp/p;\n}\n',
  });
  after(() => dir.remove());

  // A fresh clone: each example copied without what a start creates, then npm's prestart (which
  // makes the self-signed certificate) run in the copy, exactly as `npm start` runs it.
  const examples = readdirSync(join(REPO_ROOT, 'examples'), { withFileTypes: true }).filter((e) => e.isDirectory());
  const prestart = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['prestart'] ?? '';
  for (const example of examples) {
    it(`-t accepts examples/${example.name} after npm's prestart`, () => {
      const prefix = join(dir.path, 'clone/examples', example.name);
      cpSync(join(REPO_ROOT, 'examples', example.name, 'hitless.conf'), join(prefix, 'hitless.conf'));
      const [node, bin, ...args] = prestart.split(' ');
      assert.deepEqual([node, bin], ['node', 'bin/hitless']);
      const made = runHitless(args, { cwd: join(dir.path, 'clone') });
      assert.equal(made.status, 0, made.stderr);
      const file = join(prefix, 'hitless.conf');
      const result = runHitless(['-t', '-p', prefix, '-c', 'hitless.conf']);
      assert.equal(result.stderr, `hitless: the configuration file ${file} syntax is ok\nhitless: configuration file ${file} test is successful\n`);
      assert.equal(result.status, 0);
    });
  }

  it('-t prints a directive hitless cannot apply at [warn], before the verdict, and succeeds', () => {
    const file = join(dir.path, 'warn/hitless.conf');
    const result = runHitless(['-t', '-p', join(dir.path, 'warn'), '-c', 'hitless.conf']);
    assert.equal(result.status, 0);
    assert.match(result.stderr, new RegExp(`^hitless: \\[warn\\] "proxy_temp_path" has no effect in hitless \\([^)]+\\) in ${file}:3\nhitless: the configuration file ${file} syntax is ok\n`));
  });

  it('-t prints the error and "test failed", and exits 1', () => {
    const result = runHitless(['-t', '-p', dir.path]);
    const file = join(dir.path, 'conf/hitless.conf');
    assert.equal(result.status, 1);
    assert.equal(
      result.stderr,
      `hitless: [emerg] unknown directive "proxiy_pass" in ${join(dir.path, 'conf/conf.d/app.conf')}:3\nhitless: configuration file ${file} test failed\n`,
    );
  });

  it('-q keeps only errors', () => {
    const result = runHitless(['-tq', '-p', join(dir.path, 'good'), '-c', 'hitless.conf']);
    assert.equal(result.status, 0);
    assert.equal(result.stderr, '');
  });

  it('-T dumps every file read, under nginx\'s headers', () => {
    const result = runHitless(['-T', '-p', join(dir.path, 'good'), '-c', 'hitless.conf']);
    assert.equal(result.status, 0);
    assert.equal(
      result.stdout,
      `# configuration file ${join(dir.path, 'good/hitless.conf')}:\nevents {}\nhttp {\n  include app.conf;\n}\n\n` +
        `# configuration file ${join(dir.path, 'good/app.conf')}:\nserver { }\n\n`,
    );
  });

  it('-g adds directives, and nginx\'s rule for duplicates holds', () => {
    const ok = runHitless(['-t', '-p', join(dir.path, 'good'), '-c', 'hitless.conf', '-g', 'worker_processes 4;']);
    assert.equal(ok.status, 0);
    const bad = runHitless(['-t', '-p', join(dir.path, 'good'), '-c', 'hitless.conf', '-g', 'events {}']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^hitless: \[emerg\] block directives are not supported in -g option in command line\n/);
  });

  it('-v and -V print the version, -V with the TLS library and truthful configure arguments', () => {
    const v = runHitless(['-v']);
    assert.equal(v.status, 0);
    assert.match(v.stderr, /^hitless version: hitless\/\d+\.\d+\.\d+\n$/);
    const V = runHitless(['-V']);
    assert.equal(V.status, 0);
    const lines = V.stderr.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^hitless version: hitless\//);
    assert.equal(lines[1], `built with OpenSSL ${process.versions.openssl} on Node.js ${process.version}`);
    assert.equal(lines[2], 'TLS SNI support enabled');
    assert.match(lines[3] ?? '', /^configure arguments: --prefix=\S+ /);
    // What exists is not disowned, what does not exist is not claimed.
    assert.doesNotMatch(lines[3] ?? '', /--without-http_proxy_module/);
    assert.doesNotMatch(lines[3] ?? '', /--without-http_upstream_keepalive_module/);
    assert.doesNotMatch(lines[3] ?? '', /--without-http_gzip_module/);
    assert.match(lines[3] ?? '', / --with-http_gzip_static_module( |$)/);
    assert.doesNotMatch(lines[3] ?? '', /--without-http_charset_module/);
    assert.doesNotMatch(lines[3] ?? '', /--without-http_(fastcgi|uwsgi|scgi)_module/);
    assert.match(lines[3] ?? '', / --without-http_ssi_module( |$)/);
    // nginx-tests' has_module() reads the defaults of nginx 1.31's configure: the cache and the
    // newer default modules are disowned by name, sticky (which hitless has) is not.
    assert.match(lines[3] ?? '', / --without-http-cache( |$)/);
    assert.match(lines[3] ?? '', / --without-stream_upstream_least_time_module( |$)/);
    assert.doesNotMatch(lines[3] ?? '', /--without-stream_pass_module/);
    assert.doesNotMatch(lines[3] ?? '', /--without-http_upstream_sticky/);
    assert.match(lines[3] ?? '', / --with-http_ssl_module( |$)/);
    assert.match(lines[3] ?? '', / --with-stream( |$)/);
  });

  it('-h prints the usage', () => {
    const result = runHitless(['-h']);
    assert.equal(result.status, 0);
    assert.match(result.stderr, /Usage: hitless \[-\?hvVtTq\] \[-s signal\]/);
    assert.match(result.stderr, /-s signal {5}: send signal to a master process: stop, quit, reopen, reload/);
  });

  it('refuses unknown options in nginx\'s words', () => {
    const result = runHitless(['-x']);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, 'hitless: invalid option: "x"\n');
    assert.equal(runHitless(['-s', 'restart']).stderr, 'hitless: invalid option: "-s restart"\n');
  });

  it('-s reads the pid file named by the configuration and says what is wrong with it', () => {
    const missing = runHitless(['-s', 'reload', '-p', join(dir.path, 'nopid'), '-c', 'hitless.conf']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, `hitless: [error] open() "${join(dir.path, 'nopid/run/none.pid')}" failed (2: No such file or directory)\n`);
    const bad = runHitless(['-s', 'quit', '-p', join(dir.path, 'badpid'), '-c', 'hitless.conf']);
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, `hitless: [error] invalid PID number "twelve" in "${join(dir.path, 'badpid/run/bad.pid')}"\n`);
  });
});
