import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { loadConfig, loadConfigText } from '../../src/conf/loader.js';
import { createRegistry } from '../../src/modules.js';
import { defineDirective, DirectiveRegistry, type ConfModule } from '../../src/conf/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { configErrorOf } from '../helpers/config-error.js';

const registry = createRegistry();
const EVENTS = 'events {}\n';

function load(text: string) {
  return loadConfigText(text, registry, { file: '/etc/hitless/hitless.conf', prefix: '/srv/hitless' });
}

function errorOf(text: string): string {
  return configErrorOf(() => load(text), JSON.stringify(text));
}

describe('loader: nginx error messages, word for word', () => {
  const cases: [string, string][] = [
    [`${EVENTS}proxiy_pass x;`, 'unknown directive "proxiy_pass" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http {\n  server {\n    location / {\n      http {}\n    }\n  }\n}`, '"http" directive is not allowed here in /etc/hitless/hitless.conf:5'],
    [`${EVENTS}worker_processes 1 2;`, 'invalid number of arguments in "worker_processes" directive in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}worker_processes 1;\nworker_processes 2;`, '"worker_processes" directive is duplicate in /etc/hitless/hitless.conf:3'],
    [`${EVENTS}worker_processes many;`, '"worker_processes" directive invalid value in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}daemon yes;`, 'invalid value "yes" in "daemon" directive, it must be "on" or "off" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}daemon on {}`, 'directive "daemon" is not terminated by ";" in /etc/hitless/hitless.conf:2'],
    [`events;`, 'directive "events" has no opening "{" in /etc/hitless/hitless.conf:1'],
    [`${EVENTS}events {}`, '"events" directive is duplicate in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http {}\nhttp {}`, '"http" directive is duplicate in /etc/hitless/hitless.conf:3'],
    [`${EVENTS}http x {}`, 'invalid number of arguments in "http" directive in /etc/hitless/hitless.conf:2'],
    [`events { worker_connections lots; }`, '"worker_connections" directive invalid number in /etc/hitless/hitless.conf:1'],
    [`${EVENTS}worker_shutdown_timeout 1x;`, '"worker_shutdown_timeout" directive invalid value in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}error_log logs/e.log loud;`, 'invalid log level "loud" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}error_log logs/e.log warn info;`, 'duplicate log level "info" in /etc/hitless/hitless.conf:2'],
    [`http {}`, 'no "events" section in configuration'],
    [`${EVENTS};`, 'unexpected ";" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}}`, 'unexpected "}" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http {\n  server {\n`, 'unexpected end of file, expecting "}" in /etc/hitless/hitless.conf:4'],
    [`${EVENTS}daemon off`, 'unexpected end of file, expecting ";" or "}" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { server { location ^^ /a {} } }`, 'invalid location modifier "^^" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { server { location /a { location /b {} } } }`, 'location "/b" is outside location "/a" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { server { location = /a { location /a/b {} } } }`, 'location "/a/b" cannot be inside the exact location "/a" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { server { location @x { location /b {} } } }`, 'location "/b" cannot be inside the named location "@x" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { server { location / { location @x {} } } }`, 'named location "@x" can be on the server level only in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { upstream app { server 127.0.0.1 weight=0; } }`, 'invalid parameter "weight=0" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http { upstream app { server 127.0.0.1 heavy; } }`, 'invalid parameter "heavy" in /etc/hitless/hitless.conf:2'],
    [`${EVENTS}http {\n upstream app {}\n}`, 'no servers are inside upstream in /etc/hitless/hitless.conf:3'],
    [`${EVENTS}http {\n upstream a { server x; }\n upstream a { server y; }\n}`, 'duplicate upstream "a" in /etc/hitless/hitless.conf:4'],
  ];
  for (const [text, message] of cases) {
    it(message, () => assert.equal(errorOf(text), message));
  }

  it('reports the first error in document order, as nginx validates while it reads', () => {
    // nginx would never reach the syntax error on line 4: the unknown directive on line 2 stops it.
    assert.equal(errorOf(`${EVENTS}bogus;\nhttp {\n  "a"b;\n}`), 'unknown directive "bogus" in /etc/hitless/hitless.conf:2');
    assert.equal(errorOf(`${EVENTS}bogus {\n  ;\n}`), 'unknown directive "bogus" in /etc/hitless/hitless.conf:2');
  });

  it('carries stable codes and the location apart from the message', () => {
    try {
      load(`${EVENTS}\n;`);
      assert.fail('no error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'HITLESS_ERR_CONFIG_SYNTAX');
      assert.equal(err.reason, 'unexpected ";"');
      assert.deepEqual(err.location, { file: '/etc/hitless/hitless.conf', line: 3 });
      assert.equal(err.level, 'emerg');
    }
  });
});

describe('loader: the typed, frozen model', () => {
  it('applies nginx defaults relative to the prefix', () => {
    const config = load(EVENTS);
    assert.equal(config.main.get('worker_processes'), 1);
    assert.equal(config.main.get('daemon'), true);
    assert.equal(config.main.get('pid'), '/srv/hitless/logs/hitless.pid');
    assert.deepEqual(config.main.get('error_log'), [{ file: '/srv/hitless/logs/error.log', level: 'error' }]);
    assert.equal(config.main.get('worker_shutdown_timeout'), undefined);
    assert.equal(config.main.child('events')?.get('worker_connections'), 512);
  });

  it('parses values with nginx units and keeps absolute paths', () => {
    const config = load(`${EVENTS}worker_shutdown_timeout "1m 30s";\npid /run/h.pid;\nerror_log stderr info;\nerror_log logs/debug.log debug;`);
    assert.equal(config.main.get('worker_shutdown_timeout'), 90_000);
    assert.equal(config.main.get('pid'), '/run/h.pid');
    assert.deepEqual(config.main.get('error_log'), [
      { file: 'stderr', level: 'info' },
      { file: '/srv/hitless/logs/debug.log', level: 'debug' },
    ]);
  });

  it('inherits a value from the outer block unless the inner block sets its own', () => {
    const config = load(`${EVENTS}http {\n error_log logs/http.log warn;\n server { }\n server { error_log logs/s.log; }\n}`);
    const [inherits, overrides] = config.main.child('http')?.children('server') ?? [];
    assert.deepEqual(inherits?.get('error_log'), [{ file: '/srv/hitless/logs/http.log', level: 'warn' }]);
    assert.equal(inherits?.isSet('error_log'), false);
    assert.deepEqual(overrides?.get('error_log'), [{ file: '/srv/hitless/logs/s.log', level: 'error' }]);
    assert.equal(overrides?.isSet('error_log'), true);
  });

  it('tells apart directives that share a name in different contexts', () => {
    const config = load(`${EVENTS}http {\n upstream app { server 10.0.0.1:80 weight=3 max_fails=2 fail_timeout=30s backup; }\n server { }\n}`);
    const http = config.main.child('http');
    assert.equal(http?.children('server').length, 1);
    assert.deepEqual(http?.child('upstream')?.get('server').map((s) => [s.address, s.weight, s.maxFails, s.failTimeout, s.backup]), [
      ['10.0.0.1:80', 3, 2, 30_000, true],
    ]);
  });

  it('keeps location matches on their blocks', () => {
    const config = load(`${EVENTS}http { server { location = /a {} location ^~ /b {} location ~* \\.png$ {} location @fallback {} location /c { location /c/d {} } } }`);
    const locations = config.main.child('http')?.child('server')?.children('location') ?? [];
    assert.deepEqual(locations.map((l) => l.value), [
      { kind: 'exact', name: '/a', caseless: false },
      { kind: 'prefix-noregex', name: '/b', caseless: false },
      { kind: 'regex', name: '\\.png$', caseless: true },
      { kind: 'named', name: '@fallback', caseless: false },
      { kind: 'prefix', name: '/c', caseless: false },
    ]);
  });

  it('is deeply frozen', () => {
    const config = load(`${EVENTS}http { upstream a { server x; } }`);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.main));
    assert.ok(Object.isFrozen(config.main.blocks));
    const servers = config.main.child('http')?.child('upstream')?.get('server');
    assert.ok(Object.isFrozen(servers));
    assert.ok(Object.isFrozen(servers?.[0]));
    assert.throws(() => (config.main.blocks as unknown[]).push(1), TypeError);
  });

  it('lets a module add a table without touching the loader', () => {
    const extra: ConfModule = {
      name: 'test_module',
      directives: [
        defineDirective({
          kind: 'value',
          name: 'daemon',
          contexts: ['stream'],
          args: 'flag',
          syntax: 'on | off;',
          summary: 'test',
          parse: (args) => args[0] === 'on',
        }),
      ],
    };
    const custom = new DirectiveRegistry([...createRegistry().modules, extra]);
    const config = loadConfigText(`${EVENTS}stream { daemon off; }`, custom);
    assert.equal(config.main.child('stream')?.get('daemon'), false);
    assert.throws(() => new DirectiveRegistry([...createRegistry().modules, extra, extra]), /registered twice/);
  });
});

describe('loader: include', () => {
  const dir = tempDir({
    'hitless.conf': 'events {}\nhttp {\n  include conf.d/*.conf;\n  include servers/main.conf;\n}\n',
    'conf.d/b.conf': 'server { location /b {} }\n',
    'conf.d/a.conf': 'server { location /a {} }\n',
    'conf.d/.hidden.conf': 'bogus;\n',
    'conf.d/notes.txt': 'bogus;\n',
    'servers/main.conf': 'upstream u { server 127.0.0.1:1; }\n',
    'missing.conf': 'events {}\nhttp {\n  include nowhere.conf;\n}\n',
    'nomatch.conf': 'events {}\ninclude none/*.conf;\n',
    'cycle.conf': 'events {}\ninclude loop/a.conf;\n',
    'loop/a.conf': 'include loop/b.conf;\n',
    'loop/b.conf': '\ninclude loop/a.conf;\n',
    'bad-include.conf': 'events {}\nhttp {\n  include broken/*.conf;\n}\n',
    'broken/x.conf': 'server {\n',
    'twoargs.conf': 'events {}\ninclude a b;\n',
    'nested/dir/conf.conf': 'events {}\nhttp { include conf.d/a.conf; }\n',
    'nested/dir/conf.d/a.conf': 'include conf.d/b.conf;\n',
    'nested/dir/conf.d/b.conf': 'server { location /nested {} }\n',
  });
  after(() => dir.remove());

  const loadFile = (file: string) => loadConfig({ file, prefix: dir.path, registry });
  const errorOfFile = (file: string): string => {
    try {
      loadFile(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    return assert.fail('no error');
  };

  it('expands globs in sorted order, skipping dot files, relative to the main file', () => {
    const config = loadFile('hitless.conf');
    const servers = config.main.child('http')?.children('server') ?? [];
    assert.deepEqual(servers.map((s) => s.child('location')?.args[0]), ['/a', '/b']);
    assert.deepEqual(servers.map((s) => s.file), [`${dir.path}/conf.d/a.conf`, `${dir.path}/conf.d/b.conf`]);
    assert.equal(config.main.child('http')?.child('upstream')?.line, 1);
    assert.deepEqual(config.files.map((f) => f.path.slice(dir.path.length + 1)), ['hitless.conf', 'conf.d/a.conf', 'conf.d/b.conf', 'servers/main.conf']);
  });

  it('refuses a missing file with the include line', () => {
    assert.equal(errorOfFile('missing.conf'), `open() "${dir.path}/nowhere.conf" failed (2: No such file or directory) in ${dir.path}/missing.conf:3`);
  });

  it('accepts a pattern that matches nothing, as glob(3) with nginx does', () => {
    assert.doesNotThrow(() => loadFile('nomatch.conf'));
  });

  it('refuses an include cycle instead of recursing forever', () => {
    assert.equal(errorOfFile('cycle.conf'), `include cycle: "${dir.path}/loop/a.conf" includes itself in ${dir.path}/loop/b.conf:2`);
  });

  it('reports errors inside included files with their own file and line', () => {
    assert.equal(errorOfFile('bad-include.conf'), `unexpected end of file, expecting "}" in ${dir.path}/broken/x.conf:2`);
  });

  it('checks include like any directive', () => {
    assert.equal(errorOfFile('twoargs.conf'), `invalid number of arguments in "include" directive in ${dir.path}/twoargs.conf:2`);
  });

  it('resolves includes against the main file directory, not the including file', () => {
    const config = loadConfig({ file: 'nested/dir/conf.conf', prefix: dir.path, registry });
    assert.equal(config.confPrefix, `${dir.path}/nested/dir/`);
    assert.equal(config.main.child('http')?.child('server')?.child('location')?.args[0], '/nested');
  });
});

describe('loader: -g parameters', () => {
  it('reads them before the file, so the file repeating one is a duplicate', () => {
    const dir = tempDir({ 'h.conf': 'events {}\n\ndaemon on;\n' });
    try {
      assert.throws(() => loadConfig({ file: 'h.conf', prefix: dir.path, params: 'daemon off;', registry }), {
        message: `"daemon" directive is duplicate in ${dir.path}/h.conf:3`,
      });
      const config = loadConfig({ file: 'h.conf', prefix: dir.path, params: 'worker_processes 3; pid /tmp/x.pid;', registry });
      assert.equal(config.main.get('worker_processes'), 3);
    } finally {
      dir.remove();
    }
  });

  it('refuses blocks and unknown directives in command line wording', () => {
    const dir = tempDir({ 'h.conf': 'events {}\n' });
    try {
      assert.throws(() => loadConfig({ file: 'h.conf', prefix: dir.path, params: 'events {}', registry }), {
        message: 'block directives are not supported in -g option in command line',
      });
      assert.throws(() => loadConfig({ file: 'h.conf', prefix: dir.path, params: 'bogus on;', registry }), {
        message: 'unknown directive "bogus" in command line',
      });
      assert.throws(() => loadConfig({ file: 'h.conf', prefix: dir.path, params: 'daemon off', registry }), {
        message: 'unexpected end of parameter, expecting ";" in command line',
      });
    } finally {
      dir.remove();
    }
  });
});
