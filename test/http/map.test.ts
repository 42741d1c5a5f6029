/** `map`: nginx's parsing and errors, and the value a request gets (exact, hostnames, regex order, captures, default). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorOf, get, load, serve, type Served } from './helpers.js';

describe('map directive', () => {
  it('loads a map with every kind of key', () => {
    const config = load('http { map $host $x { hostnames; default d; example.com a; *.example.org b; ~^w(\\d+) c$1; include /dev/null; volatile; } }');
    const [map] = config.main.child('http')?.get('map') ?? [];
    assert.equal(map?.variable, 'x');
    assert.equal(map?.hostnames, true);
    assert.equal(map?.volatile, true);
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.match(errorOf('http { map $uri $x { default a; default b; } }'), /^duplicate default map parameter in \/x\.conf:1$/);
    assert.match(errorOf('http { map $uri $x { a b c; } }'), /^invalid number of the map parameters in/);
    assert.match(errorOf('http { map $uri x { } }'), /^invalid variable name "x" in/);
    assert.match(errorOf('http { map $uri $x { a 1; A 2; } }'), /^conflicting parameter "a" in/);
    assert.match(errorOf('http { map $host $x { hostnames; *.a.* 1; } }'), /^invalid hostname or wildcard "\*\.a\.\*" in/);
    assert.match(errorOf('http { map $uri $uri { } }'), /^the duplicate "uri" variable in/);
    assert.equal(errorOf('http { map $uri $x { ~( 1; } }'), 'pcre2_compile() failed: missing closing parenthesis in "(" in /x.conf:1');
    assert.match(errorOf('http { map $uri $x { a $nope; } }'), /^unknown "nope" variable$/);
    assert.match(errorOf('http { map $uri $x { a { } } }'), /^unexpected "\{" in/);
    assert.match(errorOf('server { map $uri $x { } }'), /"server" directive is not allowed here|"map" directive is not allowed here/);
  });

  it('lets other directives use the variable, before or after the map', () => {
    load('http { server { location / { return 200 $mapped; } } map $uri $mapped { default x; } }');
    assert.match(errorOf('http { server { location / { return 200 $unmapped; } } }'), /^unknown "unmapped" variable$/);
  });
});

describe('map at request time', () => {
  let served: Served;
  before(async () => {
    served = await serve(`http {
      map $host $site { hostnames; default none; example.com exact; *.example.com prefix; www.example.* suffix; ~^(?:api)\\.(.+)$ regex-$1; }
      map $uri $route { default other; /a first; ~^/r/(\\w+) r-$1; ~^/r/x second-regex; ~*^/CASE caseless; }
      map $arg_v $chain { default $route; 1 one; }
      server { listen 127.0.0.1:18081; location / { return 200 "$site|$route|$chain"; } }
    }`, '/tmp/');
  });
  after(() => served.stop());

  const body = async (path: string, host = 'localhost'): Promise<string> => (await get(served.port, path, { host })).body;

  it('chooses exact, then the longest wildcards, then regexes in order, then the default', async () => {
    assert.equal((await body('/', 'example.com')).split('|')[0], 'exact');
    assert.equal((await body('/', 'a.b.example.com')).split('|')[0], 'prefix');
    assert.equal((await body('/', 'www.example.net')).split('|')[0], 'suffix');
    assert.equal((await body('/', 'api.test.io')).split('|')[0], 'regex-test.io');
    assert.equal((await body('/', 'nothing.io')).split('|')[0], 'none');
    assert.equal((await body('/a')).split('|')[1], 'first');
    assert.equal((await body('/r/x')).split('|')[1], 'r-x');
    assert.equal((await body('/case')).split('|')[1], 'caseless');
    assert.equal((await body('/zzz')).split('|')[1], 'other');
  });

  it('evaluates values with variables, and maps of maps', async () => {
    assert.equal(await body('/a?v=1'), 'none|first|one');
    assert.equal(await body('/r/q?v=2'), 'none|r-q|r-q');
  });
});
