import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

function serverOf(text: string) {
  const server = load(`http { ${text} }`).main.child('http')?.child('server');
  assert.ok(server);
  return server;
}

describe('return (ngx_http_rewrite_module)', () => {
  it('return code, return code text, return code URL, return URL', () => {
    const location = (line: string) => serverOf(`server { location / { ${line} } }`).child('location')?.get('return');
    assert.deepEqual({ status: location('return 204;')?.status, text: location('return 204;')?.text }, { status: 204, text: undefined });
    assert.equal(location('return 200 "hi $host";')?.text?.source, 'hi $host');
    assert.equal(location('return 301 https://example.com$request_uri;')?.status, 301);
    assert.equal(location('return https://example.com/;')?.status, 302);
    assert.equal(location('return $scheme://example.com/;')?.status, 302);
  });

  it('runs the first return of a block and is not inherited', () => {
    const server = serverOf('server { return 403; return 404; location / { } }');
    assert.equal(server.get('return')?.status, 403);
    assert.equal(server.child('location')?.get('return'), undefined);
  });

  const cases: [string, string][] = [
    ['return x;', 'invalid return code "x"'],
    ['return 1000;', 'invalid return code "1000"'],
    ['return /path;', 'invalid return code "/path"'],
    ['return https://a/ text;', 'invalid return code "https://a/"'],
    ['return 200 "$";', 'invalid variable name in "$"'],
    ['return 200 "${host";', 'the closing bracket in "host" variable is missing'],
  ];
  for (const [line, message] of cases) it(message, () => assert.equal(errorOf(`http {\nserver { ${line} } }`), `${message} in /x.conf:2`));

  it('is not allowed in http', () => {
    assert.equal(errorOf('http {\nreturn 200; }'), '"return" directive is not allowed here in /x.conf:2');
  });

  it('unknown "x" variable, reported without a location as nginx does', () => {
    assert.equal(errorOf('http { server { return 200 $nope; } }'), 'unknown "nope" variable');
    assert.equal(errorOf('http { server { location / { return 200 ${http_host}$nope_2; } } }'), 'unknown "nope_2" variable');
  });

  it('knows $http_, $arg_, $cookie_ and the named captures of every regex in http', () => {
    assert.doesNotThrow(() =>
      load('http { server { server_name ~^(?<sub>.+)\\.example$; location ~ ^/(?<first>[a-z]+) { return 200 "$http_x_a $arg_q $cookie_id $sub $first $1"; } location /b { return 200 $first; } } }'),
    );
  });
});

describe('add_header (ngx_http_headers_module)', () => {
  it('accumulates on a level, and a level with its own replaces the inherited ones', () => {
    const server = serverOf('add_header A 1; server { add_header B 2; add_header C $host always; location /x { } location /y { add_header D 4; } }');
    const names = (headers: readonly { name: string }[] | undefined) => headers?.map((h) => h.name);
    assert.deepEqual(names(server.get('add_header')), ['B', 'C']);
    assert.deepEqual(names(server.children('location')[0]?.get('add_header')), ['B', 'C']);
    assert.deepEqual(names(server.children('location')[1]?.get('add_header')), ['D']);
    assert.equal(server.get('add_header')[1]?.always, true);
  });

  it('invalid parameter "x"', () => {
    assert.equal(errorOf('http {\nadd_header A 1 sometimes; }'), 'invalid parameter "sometimes" in /x.conf:2');
  });

  it('invalid number of arguments', () => {
    assert.equal(errorOf('http {\nadd_header A; }'), 'invalid number of arguments in "add_header" directive in /x.conf:2');
  });

  it('refuses a name node:http could not send', () => {
    assert.equal(errorOf('http {\nadd_header "X A" 1; }'), 'invalid header name "X A" in /x.conf:2');
  });

  it('unknown variable', () => {
    assert.equal(errorOf('http { add_header A $nope; }'), 'unknown "nope" variable');
  });
});

describe('keepalive_timeout, keepalive_requests, default_type', () => {
  it('defaults: 75s, 1000, text/plain', () => {
    const server = serverOf('server { }');
    assert.deepEqual(server.get('keepalive_timeout'), { timeoutMs: 75_000, headerSeconds: undefined });
    assert.equal(server.get('keepalive_requests'), 1000);
    assert.equal(server.get('default_type'), 'text/plain');
  });

  it('parses timeout [header_timeout] and inherits', () => {
    const server = serverOf('keepalive_timeout 65 60s; keepalive_requests 5; server { location / { keepalive_timeout 0; } }');
    assert.deepEqual(server.get('keepalive_timeout'), { timeoutMs: 65_000, headerSeconds: 60 });
    assert.equal(server.get('keepalive_requests'), 5);
    assert.deepEqual(server.child('location')?.get('keepalive_timeout'), { timeoutMs: 0, headerSeconds: undefined });
  });

  const cases: [string, string][] = [
    ['keepalive_timeout 1x;', '"keepalive_timeout" directive invalid value'],
    ['keepalive_timeout 10 500ms;', '"keepalive_timeout" directive invalid value'],
    ['keepalive_requests many;', '"keepalive_requests" directive invalid number'],
    ['keepalive_timeout 1 2 3;', 'invalid number of arguments in "keepalive_timeout" directive'],
  ];
  for (const [line, message] of cases) it(message, () => assert.equal(errorOf(`http {\n${line} }`), `${message} in /x.conf:2`));

  it('is duplicate', () => {
    assert.equal(errorOf('http { keepalive_requests 1;\nkeepalive_requests 2; }'), '"keepalive_requests" directive is duplicate in /x.conf:2');
  });
});

describe('log_format and access_log (ngx_http_log_module)', () => {
  it('defaults to logs/access.log combined, relative to the prefix', () => {
    const setting = serverOf('server { }').get('access_log');
    assert.equal(setting.off, false);
    assert.equal(setting.targets[0]?.path, '/srv/hitless/logs/access.log');
    assert.equal(setting.targets[0]?.format, 'combined');
  });

  it('joins the strings of a format and reads escape=', () => {
    const http = load('http { log_format j escape=json \'{"a":"$remote_addr",\' \'"b":"$status"}\'; }').main.child('http');
    const [format] = http?.get('log_format') ?? [];
    assert.equal(format?.escape, 'json');
    assert.equal(format?.template.source, '{"a":"$remote_addr","b":"$status"}');
  });

  it('takes buffer=, flush=, if= and off; off wins on its level', () => {
    const server = serverOf('server { access_log /var/log/a.log combined buffer=32k flush=5s if=$arg_log; location / { access_log off; access_log /b.log; } }');
    const [target] = server.get('access_log').targets;
    assert.equal(target?.buffer, 32 * 1024);
    assert.equal(target?.flush, 5000);
    assert.equal(target?.condition?.source, '$arg_log');
    assert.equal(server.child('location')?.get('access_log').off, true);
  });

  const cases: [string, string][] = [
    ['log_format combined "$status";', 'duplicate "log_format" name "combined" in /x.conf:2'],
    ['log_format a "$status";\nlog_format a "$status";', 'duplicate "log_format" name "a" in /x.conf:3'],
    ['log_format a escape=xml "$status";', 'unknown log format escaping "xml" in /x.conf:2'],
    ['log_format a "x $";', 'invalid parameter "$" in /x.conf:2'],
    ['log_format a "${status";', 'the closing bracket in "status" variable is missing in /x.conf:2'],
    ['access_log off combined;', 'invalid parameter "combined" in /x.conf:2'],
    ['access_log /a.log combined buffer=0;', 'invalid buffer size "0" in /x.conf:2'],
    ['access_log /a.log combined buffer=1k flush=x;', 'invalid flush time "x" in /x.conf:2'],
    ['access_log /a.log combined flush=1s;', 'no buffer is defined for access_log "/a.log" in /x.conf:2'],
    ['access_log /a.log combined bogus;', 'invalid parameter "bogus" in /x.conf:2'],
    ['access_log /a.log main;', 'unknown log format "main" in /x.conf:2'],
    ['log_format a "$nope";', 'unknown "nope" variable'],
    ['access_log /a.log combined if=$nope;', 'unknown "nope" variable'],
  ];
  for (const [lines, message] of cases) it(message, () => assert.equal(errorOf(`http {\n${lines} }`), message));

  it('finds formats caselessly and everywhere in http', () => {
    assert.doesNotThrow(() => load('http { log_format Main "$status"; server { location / { access_log /a.log main; } } }'));
  });

  it('log_format is allowed in http only', () => {
    assert.equal(errorOf('http { server {\nlog_format a "$status"; } }'), '"log_format" directive is not allowed here in /x.conf:2');
  });
});
