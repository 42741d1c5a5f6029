/** geo, valid_referers and expires at -t: nginx's errors and warnings, word for word (checked against Debian's nginx by hand and in test/e2e). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { geoValue } from '../../src/http/geo-module.js';
import { compileReferers, isInvalidReferer } from '../../src/http/referer-module.js';
import { parseExpires, setExpires } from '../../src/http/expires.js';
import { errorOf, load } from './helpers.js';

const warnings = (text: string): string[] => load(text).warnings.map((warning) => warning.message);

describe('geo directive', () => {
  it('refuses what nginx refuses, in its words', () => {
    assert.equal(errorOf('http { geo $g { bogus a; } }'), 'invalid network "bogus" in /x.conf:1');
    assert.equal(errorOf('http { geo $g { a b c; } }'), 'invalid number of the geo parameters in /x.conf:1');
    assert.equal(errorOf('http { geo $g { 10.0.0.0/8 a; ranges; } }'), 'the "ranges" directive must be the first directive inside "geo" block in /x.conf:1');
    assert.equal(errorOf('http { geo $g { ranges; 10.0.0.1-10.0.0.9 a; 10.0.0.5-10.0.0.20 b; } }'), 'range "10.0.0.5-10.0.0.20" overlaps "10.0.0.1-10.0.0.9" in /x.conf:1');
    assert.equal(errorOf('http { geo $g { ranges; 10.0.0.9-10.0.0.1 a; } }'), 'invalid range "10.0.0.9-10.0.0.1" in /x.conf:1');
    assert.equal(errorOf('http { geo x $g { } }'), 'invalid variable name "x" in /x.conf:1');
    assert.equal(errorOf('http { geo $g { 1.2.3.4/33 a; } }'), 'invalid network "1.2.3.4/33" in /x.conf:1');
  });

  it('warns where nginx warns', () => {
    assert.deepEqual(warnings('http { geo $g { 10.0.0.1/8 b; } }'), ['low address bits of 10.0.0.1/8 are meaningless in /x.conf:1']);
    assert.deepEqual(warnings('http { geo $g { 10.0.0.0/8 b; 10.0.0.0/8 c; } }'), ['duplicate network "10.0.0.0/8", value: "c", old value: "b" in /x.conf:1']);
    assert.deepEqual(warnings('http { geo $g { delete 10.0.0.0/8; } }'), ['no network "10.0.0.0/8" to delete in /x.conf:1']);
    assert.deepEqual(warnings('http { geo $g { ranges; delete 10.0.0.1-10.0.0.2; } }'), ['no address range "10.0.0.1-10.0.0.2" to delete in /x.conf:1']);
  });

  it('finds the longest network, and splits and nests ranges', () => {
    const [cidr, ranges] = load('http { geo $arg_a $c { default d; 10.0.0.0/8 ten; 10.1.0.0/16 one; ::/0 six; } geo $arg_a $r { ranges; default out; 10.0.0.0-10.255.255.255 ten; 10.1.0.5-10.1.0.5 five; } }').main.child('http')?.get('geo') ?? [];
    assert.ok(cidr !== undefined && ranges !== undefined);
    assert.equal(geoValue(cidr, '10.1.2.3'), 'one');
    assert.equal(geoValue(cidr, '10.2.2.3'), 'ten');
    assert.equal(geoValue(cidr, '11.0.0.1'), 'd');
    assert.equal(geoValue(cidr, '::ffff:10.1.0.1'), 'one');
    assert.equal(geoValue(cidr, '2001:db8::1'), 'six');
    assert.equal(geoValue(cidr, 'garbage'), 'd');
    assert.equal(geoValue(ranges, '10.1.0.5'), 'five');
    assert.equal(geoValue(ranges, '10.1.0.6'), 'ten');
    assert.equal(geoValue(ranges, '9.0.0.0'), 'out');
    assert.equal(geoValue(ranges, '::1'), 'out');
  });
});

describe('valid_referers directive', () => {
  it('refuses what nginx refuses, in its words', () => {
    assert.equal(errorOf('http { server { valid_referers none; } }'), 'the "none" or "blocked" referers are specified in the "valid_referers" directive without any valid referer');
    assert.equal(errorOf('http { server { valid_referers a.com A.com; } }'), 'conflicting parameter "a.com" in /x.conf:1');
    assert.equal(errorOf('http { server { valid_referers a.*.com; } }'), 'invalid hostname or wildcard "a.*.com" in /x.conf:1');
    assert.equal(errorOf('http { server { valid_referers ~; } }'), 'empty regex in "~" in /x.conf:1');
    assert.equal(errorOf('http { server { valid_referers "~("; } }'), 'pcre2_compile() failed: missing closing parenthesis in "(" in /x.conf:1');
    assert.equal(errorOf('http { server { valid_referers ""; } }'), 'invalid referer "" in /x.conf:1');
    assert.equal(errorOf('http { server { referer_hash_max_size x; } }'), '"referer_hash_max_size" directive invalid number in /x.conf:1');
    assert.match(warnings('http { server { referer_hash_bucket_size 128; } }')[0] ?? '', /^"referer_hash_bucket_size" has no effect in hitless/);
  });

  it('judges referers as ngx_http_referer_variable()', () => {
    const server = load('http { server { valid_referers blocked *.a.test b.test/x/ www.c.* ~\\.d\\.; location / { } } }').main.child('http')?.blocks[0];
    assert.ok(server !== undefined);
    const check = compileReferers(server);
    assert.equal(isInvalidReferer(check, undefined), true, 'none is not listed');
    assert.equal(isInvalidReferer(check, 'junk'), false, 'blocked');
    assert.equal(isInvalidReferer(check, 'http://q.a.test/'), false);
    assert.equal(isInvalidReferer(check, 'http://a.test/'), true);
    assert.equal(isInvalidReferer(check, 'http://b.test/x/y'), false);
    assert.equal(isInvalidReferer(check, 'http://b.test/y'), true);
    assert.equal(isInvalidReferer(check, 'https://www.c.org/'), false);
    assert.equal(isInvalidReferer(check, 'http://E.D.F/'), false, 'caseless regex');
    assert.equal(isInvalidReferer(check, 'http://other.test/'), true);
    // The location without valid_referers takes the server's.
    assert.deepEqual(compileReferers(server.blocks[0] as typeof server), check);
  });
});

describe('expires', () => {
  it('parses as ngx_http_parse_expires()', () => {
    assert.deepEqual(parseExpires('1h', false), { kind: 'access', seconds: 3600 });
    assert.deepEqual(parseExpires('-1h', false), { kind: 'access', seconds: -3600 });
    assert.deepEqual(parseExpires('@15h30m', false), { kind: 'daily', seconds: 55800 });
    assert.deepEqual(parseExpires('1d', true), { kind: 'modified', seconds: 86400 });
    assert.deepEqual(parseExpires('epoch', true), { error: 'invalid value' });
    assert.deepEqual(parseExpires('@1h', true), { error: 'daily time cannot be used with "modified" parameter' });
    assert.deepEqual(parseExpires('@25h', false), { error: 'daily time value must be less than 24 hours' });
    assert.deepEqual(parseExpires('10ms', false), { error: 'invalid value' });
  });

  it('replaces an Expires and every Cache-Control in place', () => {
    const headers = ['Cache-Control', 'private', 'Expires', 'x', 'Cache-Control', 'no-transform', 'Last-Modified', 'y'];
    setExpires(headers, { kind: 'modified', seconds: 2048 }, 0, 1_000_000_000_000);
    assert.deepEqual(headers, ['Cache-Control', 'no-cache', 'Expires', 'Thu, 01 Jan 1970 00:34:08 GMT', 'Last-Modified', 'y']);
    const fresh: string[] = [];
    setExpires(fresh, { kind: 'access', seconds: 60 }, -1, 1_000_000_000_000);
    assert.deepEqual(fresh, ['Expires', 'Sun, 09 Sep 2001 01:47:40 GMT', 'Cache-Control', 'max-age=60']);
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.equal(errorOf('http { expires foo 1h; }'), '"expires" directive invalid value in /x.conf:1');
    assert.equal(errorOf('http { expires 1h; expires 2h; }'), '"expires" directive is duplicate in /x.conf:1');
    assert.equal(errorOf('http { expires modified @1h; }'), '"expires" directive daily time cannot be used with "modified" parameter in /x.conf:1');
  });
});
