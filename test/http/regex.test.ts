/**
 * Regular expressions in the http configuration, as nginx's PCRE reads them: named captures in
 * both spellings as `$name` in locations, server names and maps, `$1`..`$9`, `~*` and `(?i)`,
 * PCRE-only syntax, `$` before a final newline, and refusals in nginx's `pcre2_compile()` words.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compileConfigRegex, compileNginxRegex, unprotectedReason } from '../../src/http/regex.js';
import { errorOf, get, load, serve, type Served } from './helpers.js';

describe('regexes in the configuration', () => {
  it('refuses a bad pattern at the directive, in nginx\'s words', () => {
    assert.equal(errorOf('http {\nserver { location ~ (abc { } } }'), 'pcre2_compile() failed: missing closing parenthesis in "(abc" in /x.conf:2');
    assert.equal(errorOf('http {\nserver {\nlocation ~* a)b { } } }'), 'pcre2_compile() failed: unmatched closing parenthesis in "a)b" at ")b" in /x.conf:3');
    assert.equal(errorOf('http { map $uri $x {\n~[z-a] 1; } }'), 'pcre2_compile() failed: range out of order in character class in "[z-a]" at "a]" in /x.conf:2');
    assert.equal(errorOf('http { server { server_name ~^(?<n>a)(?<n>b)$; } }'), 'pcre2_compile() failed: two named subpatterns have the same name (PCRE2_DUPNAMES not set) in "^(?<n>a)(?<n>b)$" at "b)$" in /x.conf:1');
  });

  it('refuses what JavaScript cannot express instead of reading it otherwise', () => {
    assert.equal(
      errorOf('http { server { location ~ ^/(?>a+)b { } } }'),
      'pcre2_compile() failed: an atomic group is not supported by hitless (JavaScript has no equivalent) in "^/(?>a+)b" at ">a+)b" in /x.conf:1',
    );
    assert.match(errorOf('http { server { location ~ a++ { } } }'), /^pcre2_compile\(\) failed: a possessive quantifier is not supported by hitless/);
    assert.match(errorOf('http { server { proxy_redirect ~(?R) /; } }'), /^pcre2_compile\(\) failed: recursion is not supported by hitless/);
  });

  it('defines a map\'s named captures as variables, in http and in stream', () => {
    load('http { map $uri $x { ~^/(?<part>[a-z]+) $part; } server { location / { return 200 $part; } } }');
    load('stream { map $remote_addr $x { ~^(?P<octet>\\d+)\\. $octet; default 0; } server { listen 127.0.0.1:1; return $octet; } }');
    assert.equal(errorOf('stream { server { listen 127.0.0.1:1; return $octet; } }'), 'unknown "octet" variable');
  });

  it('warns when the backtracking guard cannot cover a pattern', () => {
    const warnings: string[] = [];
    const ctx = { fail: (reason: string): never => assert.fail(reason), warn: (reason: string) => warnings.push(reason) };
    compileConfigRegex('^/(a+)+$', false, ctx);
    assert.deepEqual(warnings, []);
    compileConfigRegex('^/(\\w+)/\\1$', false, ctx);
    compileConfigRegex('^/(?!api/)', false, ctx);
    assert.deepEqual(warnings, [unprotectedReason('^/(\\w+)/\\1$', 'a backreference'), unprotectedReason('^/(?!api/)', 'a lookahead or lookbehind assertion')]);
    assert.equal(compileNginxRegex('\\.(?i:php)$', false).unprotected, undefined);
  });
});

describe('regexes at request time', () => {
  let served: Served;
  before(async () => {
    served = await serve(`http {
      map $uri $section { ~^/m/(?<first>[a-z]+)/(?P<second>[0-9]+)$ "$first-$second-$2"; default none; }
      server {
        listen 127.0.0.1:18181;
        server_name ~^(?P<sub>[a-z]+)\\.example\\.com$ localhost;
        location ~ "^/n/(?<year>\\d{4})/(?P<slug>[^/]+)$" { return 200 "$year|$slug|$1|$2|$sub"; }
        location ~* ^/CASE/(.*)$ { return 200 "caseless $1"; }
        location ~ (?i)^/inline/ { return 200 inline; }
        location ~ ^/q/\\Q*.*\\E$ { return 200 quoted; }
        location ~ ^/posix/[[:digit:]]+$ { return 200 posix; }
        location ~ \\.php$ { return 200 "php $uri"; }
        location /m/ { return 200 "map $section|$first|$second"; }
        location / { return 200 "default"; }
      }
    }`, '/tmp/');
  });
  after(() => served.stop());

  const body = async (path: string, host = 'localhost'): Promise<string> => (await get(served.port, path, { host })).body;

  it('exposes named captures of both spellings and $1.. from a location', async () => {
    assert.equal(await body('/n/2024/hello', 'www.example.com'), '2024|hello|2024|hello|www');
  });

  it('exposes named captures of both spellings from a map, and $2 of the map\'s match', async () => {
    assert.equal(await body('/m/abc/42'), 'map abc-42-42|abc|42');
    assert.equal(await body('/m/abc/x'), 'map none||');
  });

  it('matches caselessly for ~* and a leading (?i)', async () => {
    assert.equal(await body('/case/Hello'), 'caseless Hello');
    assert.equal(await body('/INLINE/x'), 'inline');
  });

  it('reads PCRE-only syntax', async () => {
    assert.equal(await body('/q/*.*'), 'quoted');
    assert.equal(await body('/q/ab'), 'default');
    assert.equal(await body('/posix/123'), 'posix');
  });

  it('lets $ match before a final newline, as PCRE does (%0A decoded into $uri)', async () => {
    assert.equal(await body('/x.php%0A'), 'php /x.php\n');
    assert.equal(await body('/x.php%0A%0A'), 'default');
  });
});
