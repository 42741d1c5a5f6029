import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildSubTables, SubMatcher } from '../../src/http/sub-matcher.js';
import { errorOf, load } from './helpers.js';

/** The body `chunks` through the strings `pairs` (string, replacement; strings lowercase as the parser leaves them). */
function run(pairs: readonly (readonly [string, string])[], once: boolean, chunks: readonly string[]): { body: string; maxPending: number } {
  const tables = buildSubTables(pairs.map(([match], line) => ({ match: Buffer.from(match, 'latin1'), line })));
  const asked: number[] = [];
  const matcher = new SubMatcher(tables, (line) => {
    asked.push(line);
    return Buffer.from(pairs[line]?.[1] ?? '', 'latin1');
  }, once);
  const out: Buffer[] = [];
  let maxPending = 0;
  for (const chunk of chunks) {
    matcher.write(Buffer.from(chunk, 'latin1'), (data) => out.push(Buffer.from(data)));
    maxPending = Math.max(maxPending, matcher.pending);
  }
  matcher.end((data) => out.push(Buffer.from(data)));
  // A replacement is evaluated once per response, however many times its string matches.
  assert.equal(new Set(asked).size, asked.length);
  return { body: Buffer.concat(out).toString('latin1'), maxPending };
}

/** The body whole, then split at every one and every two places: the output must not depend on where chunks end. */
function filter(pairs: readonly (readonly [string, string])[], once: boolean, body: string): string {
  const longest = Math.max(...pairs.map(([match]) => match.length));
  const whole = run(pairs, once, [body]).body;
  for (let i = 0; i <= body.length; i++) {
    const split = run(pairs, once, [body.slice(0, i), body.slice(i)]);
    assert.equal(split.body, whole, `split at ${i}`);
    assert.ok(split.maxPending <= longest - 1, `held back ${split.maxPending} bytes`);
    for (let j = i; j <= body.length; j++) {
      assert.equal(run(pairs, once, [body.slice(0, i), body.slice(i, j), body.slice(j)]).body, whole, `split at ${i} and ${j}`);
    }
  }
  const bytewise = run(pairs, once, [...body]);
  assert.equal(bytewise.body, whole, 'one byte at a time');
  assert.ok(bytewise.maxPending <= longest - 1);
  return whole;
}

describe('sub_filter matcher (ngx_http_sub_parse())', () => {
  it('replaces the first match only with once, every match without', () => {
    assert.equal(filter([['foo', 'bar']], true, 'a foo b FOO c fOo'), 'a bar b FOO c fOo');
    assert.equal(filter([['foo', 'bar']], false, 'a foo b FOO c fOo'), 'a bar b bar c bar');
  });

  it('with once, replaces each string at its own first match, then lets the rest pass', () => {
    assert.equal(filter([['a', '1'], ['b', '2']], true, 'xbxaxbxa'), 'x2x1xbxa');
    assert.equal(filter([['a', '1'], ['b', '2']], false, 'xbxaxbxa'), 'x2x1x2x1');
  });

  it('takes the leftmost of overlapping strings and goes on after it', () => {
    assert.equal(filter([['bcd', '2'], ['abc', '1']], false, 'abcdbcd'), '1d2');
    assert.equal(filter([['aa', 'X']], false, 'aaaaa'), 'XXa');
  });

  it('at one place, takes the string configured first among those that match there', () => {
    assert.equal(filter([['ab', 'X'], ['abc', 'Y']], false, 'abc abcd'), 'Xc Xcd');
    assert.equal(filter([['abc', 'Y'], ['ab', 'X']], false, 'abc abd'), 'Y Xd');
  });

  it('matches across chunk boundaries with strings of different lengths', () => {
    assert.equal(filter([['<head>', '<head><meta>'], ['</body>', '<script></script></body>'], ['x', 'y']], false, '<HTML><HEAD></head><Body>x</BODY>'), '<HTML><head><meta></head><Body>y<script></script></body>');
  });

  it('sends what it held back unsearched at the end, as nginx does', () => {
    // "abc" may begin "abcd" when the body ends: nginx sends it as it is, "b" not replaced.
    assert.equal(filter([['abcd', 'X'], ['b', 'Y']], false, 'zabc'), 'zabc');
    assert.equal(filter([['abcd', 'X'], ['b', 'Y']], false, 'zabce'), 'zaYce');
    assert.equal(filter([['abcd', 'X'], ['b', 'Y']], false, 'zabcd'), 'zX');
  });

  it('replaces with nothing, and passes a body with no match untouched', () => {
    assert.equal(filter([['foo', '']], false, 'afoobfoo'), 'ab');
    assert.equal(filter([['foo', 'bar']], false, 'fo of oof f'), 'fo of oof f');
    assert.equal(filter([['foo', 'bar']], false, ''), '');
  });

  it('holds back only the bytes that begin a partial match (nginx on a flushed buffer)', () => {
    const tables = buildSubTables([{ match: Buffer.from('ab'), line: 0 }, { match: Buffer.from('zab'), line: 1 }]);
    const matcher = new SubMatcher(tables, () => Buffer.from('AB'), false);
    const out: string[] = [];
    matcher.write(Buffer.from('xyz'), (data) => out.push(data.toString()));
    assert.deepEqual([out.join(''), matcher.pending], ['xy', 1]);
    matcher.write(Buffer.from('q'), (data) => out.push(data.toString()));
    assert.deepEqual([out.join(''), matcher.pending], ['xyzq', 0]);
    matcher.write(Buffer.from('za'), (data) => out.push(data.toString()));
    assert.deepEqual([out.join(''), matcher.pending], ['xyzq', 2]);
  });

  it('holds back at most the longest string minus one byte, however long the body', () => {
    const chunks = Array.from({ length: 2000 }, (_, i) => `chunk ${i} abcdefghi `);
    const { body, maxPending } = run([['abcdefghij', 'X'], ['hi', 'Y']], false, chunks);
    assert.ok(maxPending <= 9);
    assert.equal(body, chunks.join('').replaceAll('hi', 'Y'));
  });
});

describe('sub_filter directives (ngx_http_sub_filter_module)', () => {
  it('refuses bad input in nginx\'s words', () => {
    assert.equal(errorOf('http { sub_filter "" x; }'), 'empty search pattern in /x.conf:1');
    assert.equal(errorOf('http { sub_filter a; }'), 'invalid number of arguments in "sub_filter" directive in /x.conf:1');
    assert.equal(errorOf('http { sub_filter_once maybe; }'), 'invalid value "maybe" in "sub_filter_once" directive, it must be "on" or "off" in /x.conf:1');
    assert.equal(errorOf('http { server { location / { if ($x) { sub_filter a b; } } } }'), '"sub_filter" directive is not allowed here in /x.conf:1');
    const many = Array.from({ length: 256 }, (_, i) => `sub_filter s${i} r;`).join(' ');
    assert.equal(errorOf(`http { ${many} }`), 'number of search patterns exceeds 255 in /x.conf:1');
    assert.equal(errorOf('http { sub_filter $nosuch r; }'), 'unknown "nosuch" variable');
  });

  it('lowercases the string and inherits all lines from the nearest level that has any', () => {
    const http = load('http { sub_filter FOO bar; sub_filter Baz Qux; server { location /a { } location /b { sub_filter X y; } } }').main.child('http');
    assert.deepEqual(http?.get('sub_filter').map((pair) => [pair.match.source, pair.replacement.source]), [['foo', 'bar'], ['baz', 'Qux']]);
    assert.equal(http?.get('sub_filter_once'), true);
    assert.equal(http?.get('sub_filter_last_modified'), false);
    assert.ok(http?.get('sub_filter_types').types.has('text/html'));
  });
});
