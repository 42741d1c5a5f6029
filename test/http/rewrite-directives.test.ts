/**
 * The rewrite module's configuration: the order of a block's rewrite directives, and the refusals
 * `nginx -t` (Debian's 1.22) gives for each bad form, in its words and at its line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

const inLocation = (line: string): string => `http {\nserver {\nlocation / {\n${line}\n}\n}\n}`;

describe('rewrite, if, set, break (ngx_http_rewrite_module)', () => {
  it('keeps each directive\'s place in the order written, across names', () => {
    const location = load(inLocation('set $a 1; rewrite ^/a /b; if ($a) { set $b 2; } break; return 204;')).main.child('http')?.child('server')?.child('location');
    assert.ok(location);
    const set = location.get('set')[0]?.order ?? -1;
    const rewrite = location.get('rewrite')[0]?.order ?? -1;
    const ifOrder = (location.child('if')?.value as { order: number }).order;
    const brk = location.get('break')[0] ?? -1;
    const ret = location.get('return')?.order ?? -1;
    assert.ok(set < rewrite && rewrite < ifOrder && ifOrder < brk && brk < ret, `${set} ${rewrite} ${ifOrder} ${brk} ${ret}`);
  });

  it('reads the flags and the final "?" of a replacement', () => {
    const rules = load(inLocation('rewrite ^/a /b last; rewrite ^/c /d? break; rewrite ^/e http://x/ ; rewrite ^/f /g permanent;')).main.child('http')?.child('server')?.child('location')?.get('rewrite');
    assert.deepEqual(rules?.map((rule) => [rule.stop, rule.redirect, rule.dropArgs]), [['last', undefined, false], ['break', undefined, true], ['last', 302, false], ['last', 301, false]]);
  });

  const refused: [string, string][] = [
    ['rewrite ^ "";', 'empty replacement in /x.conf:4'],
    ['rewrite ^ /x bogus;', 'invalid parameter "bogus" in /x.conf:4'],
    ['rewrite ( /x;', 'pcre2_compile() failed: missing closing parenthesis in "(" in /x.conf:4'],
    ['set x 1;', 'invalid variable name "x" in /x.conf:4'],
    ['set $uri 1;', 'the duplicate "uri" variable in /x.conf:4'],
    ['set $remote_addr 1;', 'the duplicate "remote_addr" variable in /x.conf:4'],
    ['if ($a) { }', 'unknown "a" variable'],
    ['if (x) { }', 'invalid condition "x" in /x.conf:4'],
    ['if ($a = ) { }', 'invalid condition "$a" in /x.conf:4'],
    ['if ($a == b) { }', 'unexpected "==" in condition in /x.conf:4'],
    ['if (-q /x) { }', 'invalid condition "-q" in /x.conf:4'],
    ['if (-f) { }', 'invalid condition "-f" in /x.conf:4'],
    ['if ($a b c d) { }', 'invalid condition "$a" in /x.conf:4'],
    ['if ($a ~ "(") { }', 'pcre2_compile() failed: missing closing parenthesis in "(" in /x.conf:4'],
    ['break 1;', 'invalid number of arguments in "break" directive in /x.conf:4'],
    ['if ($uri) { if ($uri) { } }', '"if" directive is not allowed here in /x.conf:4'],
    ['if ($uri) { location /x { } }', '"location" directive is not allowed here in /x.conf:4'],
    ['set $a $nope;', 'unknown "nope" variable'],
    ['if ($nope) { }', 'unknown "nope" variable'],
  ];
  for (const [line, message] of refused) it(`refuses ${line}`, () => assert.equal(errorOf(inLocation(line)), message));

  it('accepts what nginx accepts: root in if, spaces inside the parentheses, a quoted operand, named captures of if', () => {
    for (const line of ['if ($uri) { root /x; }', 'if ( $uri ) { }', 'if ($uri = "a")  { }', 'if ($uri ~ (?<n>b)) { return 200 $n; }', 'set $x 1; if ($x) { return 200 $x; }', 'set $args a=b;']) {
      assert.doesNotThrow(() => load(inLocation(line)), line);
    }
  });

  it('rewrite_log and uninitialized_variable_warn are flags of http, server, location and if', () => {
    assert.doesNotThrow(() => load('http { rewrite_log on; uninitialized_variable_warn off; server { if ($uri) { rewrite_log off; } location / { if ($uri) { uninitialized_variable_warn on; } } } }'));
    assert.equal(errorOf('http {\nrewrite_log yes; }'), 'invalid value "yes" in "rewrite_log" directive, it must be "on" or "off" in /x.conf:2');
  });
});
