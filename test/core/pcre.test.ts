/**
 * The PCRE-to-JavaScript translation, judged by PCRE2 itself: every pattern of the table is run by
 * `pcre2test` (Debian's pcre2-utils, the library Debian's nginx links) and by JavaScript on the
 * same subjects, and the matches and captures must be the same. Errors are compared too: PCRE's
 * reason and offset.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PcreSyntaxError, translatePcre } from '../../src/core/pcre.js';

interface Case {
  readonly pattern: string;
  readonly caseless?: boolean;
  readonly subjects: readonly string[];
}

const cases: readonly Case[] = [
  { pattern: '^/api/(v[0-9]+)/users/([^/]+)$', subjects: ['/api/v2/users/alice', '/api/v2/users/', '/api/x/users/a', '/api/v2/users/bob\n', '/api/v2/users/bob\n\n'] },
  { pattern: '\\.php$', subjects: ['/index.php', '/index.php\n', '/index.phpx', '/index.php\r'] },
  { pattern: '^(.*)$', subjects: ['abc', 'a\rb', 'a\nb', 'ab\n'] },
  { pattern: '^(?<first>[a-z]+)/(?P<second>\\d+)$', subjects: ['abc/123', 'ABC/123', 'abc/'] },
  { pattern: '(?P<word>o+)(?P=word)', subjects: ['foooo', 'fo'] },
  { pattern: '(a)(b)\\2\\1', subjects: ['abba', 'abab'] },
  { pattern: '\\.(?:jpg|jpeg|gif|png|ico)$', caseless: true, subjects: ['/a.JPG', '/a.Png', '/a.txt'] },
  { pattern: '(?i)^/Admin', subjects: ['/admin', '/ADMIN/x', '/user'] },
  { pattern: 'a(?i)b|c', subjects: ['aB', 'C', 'AB'] },
  { pattern: '(a(?i)b|c)d', subjects: ['abd', 'aBd', 'CD', 'Cd', 'cD'] },
  { pattern: '(?i:[^a])x', subjects: ['Ax', 'bx', 'Bx'] },
  { pattern: '(?-i)abc', caseless: true, subjects: ['ABC', 'abc'] },
  { pattern: 'x(?i:y)z', subjects: ['xYz', 'xyZ'] },
  { pattern: '[[:alpha:]]+[[:digit:]]*', subjects: ['abc123', '123', 'AbC'] },
  { pattern: '^[[:upper:]]+$', caseless: true, subjects: ['abc', 'ABC', 'a1'] },
  { pattern: '[[:^space:][:punct:]]+', subjects: ['  a.b  ', '\t\n'] },
  { pattern: '\\Qa.b*c\\E+', subjects: ['a.b*cc', 'axbc'] },
  { pattern: '[\\Q]^\\E]+', subjects: ['^]^', 'abc'] },
  { pattern: '\\x{41}\\x42\\x4\\101\\o{102}', subjects: ['ABA\x04AB', 'AB\x04AB'] },
  { pattern: 'a(?#a comment)b', subjects: ['ab', 'a(?#a comment)b'] },
  { pattern: '(?x) a b  # a comment\n c', subjects: ['abc', 'a b c'] },
  { pattern: '\\Aab\\z', subjects: ['ab', 'ab\n'] },
  { pattern: '\\Aab\\Z', subjects: ['ab', 'ab\n', 'ab\n\n'] },
  { pattern: 'a\\s+b', subjects: ['a \t\x0bb', 'a\xa0b', 'a\x85b'] },
  { pattern: '\\h+|\\v+', subjects: ['\xa0 \t', '\x85\r\n', 'x'] },
  { pattern: '\\S+', subjects: ['\xa0x\xa0'] },
  { pattern: '\\w+\\W\\d\\D', subjects: ['ab_1-2x', '\xe9\xe9'] },
  { pattern: 'a.c', subjects: ['abc', 'a\nc', 'a\rc'] },
  { pattern: '(?s)a.c', subjects: ['a\nc'] },
  { pattern: 'a\\Nc', subjects: ['a\nc', 'abc'] },
  { pattern: '\\e\\a\\cA\\c[', subjects: ['\x1b\x07\x01\x1b'] },
  { pattern: '\\/static\\/', subjects: ['/static/a'] },
  { pattern: 'a{2,3}b{2}c{1,}d{,2}', subjects: ['aabbcd{,2}', 'aaabbccd{,2}', 'abbcd{,2}'] },
  { pattern: 'a{', subjects: ['a{'] },
  { pattern: '(a|ab)(c|bcd)(d*)', subjects: ['abcd'] },
  { pattern: '(?U)a+', subjects: ['aaa'] },
  { pattern: '(?U)a+?', subjects: ['aaa'] },
  { pattern: 'a+?b', subjects: ['aaab'] },
  { pattern: '(?n)(a)(?<x>b)', subjects: ['ab'] },
  { pattern: '(?=.*foo)(?!.*bar)^(.*)$', subjects: ['xfoo', 'foobar'] },
  { pattern: '(?<=/)x', subjects: ['/x', 'x'] },
  { pattern: '(a$|b)', subjects: ['a', 'a\n', 'b'] },
  { pattern: '(a$|b)c', subjects: ['bc', 'a\nc'] },
  { pattern: 'a$\\n', subjects: ['a\n'] },
  { pattern: '(?m)^b$', subjects: ['a\nb\nc', 'b', 'ab'] },
  { pattern: '\\d\\b\\B', subjects: ['1a', '1 '] },
  { pattern: '[a-c-e]+', subjects: ['ab-e', 'd'] },
  { pattern: '[]a]+', subjects: ['a]a'] },
  { pattern: '[^]a]+', subjects: ['a]bc'] },
  { pattern: '[\\d-]+', subjects: ['1-2'] },
  { pattern: '[\\x00-\\x1f\\x7f]', subjects: ['a\x7f', 'a'] },
  { pattern: '\u00e9t\u00e9', subjects: [Buffer.from('\u00e9t\u00e9', 'utf8').toString('latin1'), '\u00e9t\u00e9'] },
  { pattern: '\u00c9', caseless: true, subjects: [Buffer.from('\u00e9', 'utf8').toString('latin1'), Buffer.from('\u00c9', 'utf8').toString('latin1')] },
  { pattern: '(a)\\g{1}(b)\\g{-1}', subjects: ['aabb', 'abab'] },
  { pattern: '^(?<oct>\\d{1,3})\\.(?&oct)\\.(?P>oct)\\.(?1)$', subjects: ['10.0.0.1', '1.2.3', '1.2.3.4444'] },
  { pattern: '(?+1)-([a-c]+)-(?-1)', caseless: true, subjects: ['ab-C-ba', 'x-a-d'] },
  { pattern: '(?i:(x))(?1)', subjects: ['xX', 'Xy'] },
  { pattern: '(?<w>[a-z])\\g<w>\\g\'1\'\\g<-1>', subjects: ['abcd', 'ab1'] },
  { pattern: '(?:(a)|b)', subjects: ['a', 'b'] },
  { pattern: '(?:(a)b)+', subjects: ['abab'] },
  { pattern: '^(?:/([^/]+))+$', subjects: ['/a/bc'] },
  { pattern: '(?:(a)|b)?c', subjects: ['ac', 'bc', 'c'] },
  { pattern: '(?<n>a)\\k<n>\\k{n}\\k\'n\'', subjects: ['aaaa', 'aaa'] },
  { pattern: '(?i)(a+)\\1', subjects: ['aA', 'Aa', 'ab'] },
  { pattern: '(\\w)\\1[\\d]', caseless: true, subjects: ['xX1', 'xy1'] },
  { pattern: '^(www\\.)?(?<domain>.+)$', caseless: true, subjects: ['www.Example.com', 'example.org'] },
  // Unicode properties without UTF: a byte is the Latin-1 code point of its value (http_server_name.t's \p{N}).
  { pattern: '^(?P<name>www\\p{N}+)\\.example\\.com$', subjects: ['www12.example.com', 'www\xb2\xbc.example.com', 'wwwx.example.com', 'www\xc2\xb2.example.com'] },
  { pattern: '^\\pL+\\P{L}[\\p{^N}\\p{Zs}]$', subjects: ['ab1x', 'a\xe9\xaa-\xa0', 'ab12', 'A\xd7 '] },
  { pattern: '^\\p{nd}\\p{ L_u }\\p{L&}\\p{Any}$', subjects: ['1Ab\n', '1ab\n', '\xb2Ab\x00', '9\xc0\xb5\xff'] },
  { pattern: '^[\\p{P}\\p{S}]+$', caseless: true, subjects: ['!$\xa7\xb6', 'a!', '\xab\xbb\xbf'] },
];

/** Valid PCRE that hitless cannot express, each refused. */
const refused: readonly string[] = ['(?>a+)b', 'a++b', 'a*+', '(a(?1)?)', '(?R)', '(?<n>a|(?&n)b)', '(?<n>x(?P>m))(?<m>y(?P>n))', '(a)?(?(1)b|c)', '(*UTF)a', '(?|(a)|(b))', 'a\\Kb', '\\R', '\\X', '(?J)(?<n>a)|(?<n>b)', '(?<a>x)(?<A>y)', '(a)(?i)\\1', '[a-z](?i)(x)\\1', '(a)?b\\1', '(a)|\\1b', '(a\\1)', '\\1(a)', '(?:(a)|b)+', '(?:x(a)?)+', '(?:(?:(a)|b)c)*'];

/** Invalid PCRE: our message must be PCRE's. */
const invalid: readonly string[] = ['(abc', 'a)b', '[abc', '(?<n>a)(?<n>b)', '*a', '\\k<zz>', '[z-a]', '(?z)', '\\c', '(?<1a>x)', 'a{3,2}', 'x{2}{3}', '\\x{100}', '\\2(a)', '[[:foo:]]', '[[.a.]]', '[:alpha:]', 'a\\ub', '\\i', '^*', '[\\d-z]', '(?#abc', 'a{99999}', '\\p{N', '\\p'];

/** Configuration text as nginx hands it to PCRE: UTF-8 bytes, one char per byte here. */
function bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function subjectText(subject: string): string {
  return [...subject].map((ch) => (/[A-Za-z0-9]/.test(ch) ? ch : `\\x{${ch.charCodeAt(0).toString(16)}}`)).join('');
}

function delimiterFor(pattern: string): string {
  const found = [...'/!@%,;~`"\'#'].find((d) => !pattern.includes(d));
  if (found === undefined) throw new Error(`no delimiter for ${pattern}`);
  return found;
}

/** pcre2test's rendering of a captured value. */
function show(value: string): string {
  return [...value].map((ch) => {
    const code = ch.charCodeAt(0);
    return code >= 0x20 && code < 0x7f ? ch : `\\x${code.toString(16).padStart(2, '0')}`;
  }).join('');
}

type Outcome = { kind: 'match'; groups: string[] } | { kind: 'none' };

/** Runs pcre2test on patterns and subjects: per pattern, a compile error or one outcome per subject. */
function judge(dir: string, items: readonly { pattern: string; caseless: boolean; subjects: readonly string[] }[]): (string | Outcome[])[] {
  const lines: string[] = [];
  for (const item of items) {
    const d = delimiterFor(item.pattern);
    lines.push(`${d}${bytes(item.pattern)}${d}${item.caseless ? 'i' : ''}`);
    for (const subject of item.subjects) lines.push(`    ${subjectText(subject)}`);
    lines.push('');
  }
  const input = join(dir, 'input.txt');
  writeFileSync(input, Buffer.from(lines.join('\n'), 'latin1'));
  const output = execFileSync('pcre2test', ['-q', input], { timeout: 20_000 }).toString('latin1').split('\n');
  const results: (string | Outcome[])[] = [];
  let index = 0;
  let current: Outcome[] | undefined;
  for (const line of output) {
    if (current === undefined && index < items.length && line.length > 0 && !line.startsWith(' ')) {
      current = [];
      results.push(current);
      index++;
      continue;
    }
    if (line.startsWith('Failed: error')) {
      results[results.length - 1] = line;
      current = undefined;
      continue;
    }
    if (line === '') {
      current = undefined;
      continue;
    }
    if (current === undefined) continue;
    if (line === 'No match') current.push({ kind: 'none' });
    else {
      const capture = /^ *(\d+): (.*)$/.exec(line);
      if (capture === null) continue;
      if (capture[1] === '0') current.push({ kind: 'match', groups: [] });
      const last = current[current.length - 1];
      if (last?.kind === 'match') last.groups.push(capture[2] as string);
    }
  }
  return results;
}

function run(pattern: string, caseless: boolean, subject: string): Outcome {
  const translated = translatePcre(bytes(pattern), { caseless });
  const match = new RegExp(translated.source, translated.flags).exec(subject);
  if (match === null) return { kind: 'none' };
  const groups = [...match].map((value, i) => (i === 0 ? show(value ?? '') : value === undefined ? '<unset>' : show(value)));
  // pcre2test lists captures up to the highest one set; the whole match is compared only without a trailing `$`.
  while (groups.length > 1 && groups[groups.length - 1] === '<unset>') groups.pop();
  return { kind: 'match', groups };
}

describe('PCRE to JavaScript, judged by pcre2test', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-pcre-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('matches and captures as PCRE2 does, for every pattern of the table', () => {
    const expected = judge(dir, cases.map((c) => ({ ...c, caseless: c.caseless ?? false })));
    assert.equal(expected.length, cases.length);
    cases.forEach((c, i) => {
      const outcomes = expected[i];
      assert.ok(Array.isArray(outcomes), `pcre2test refused ${c.pattern}: ${String(outcomes)}`);
      c.subjects.forEach((subject, j) => {
        const want = outcomes[j];
        const got = run(c.pattern, c.caseless ?? false, subject);
        // A `$` hitless lets consume the final newline: the whole match may differ, the captures may not.
        if (want?.kind === 'match' && got.kind === 'match' && want.groups[0] !== got.groups[0]) {
          assert.equal(got.groups[0], `${want.groups[0]}\\x0a`, `${c.pattern} on ${JSON.stringify(subject)}`);
          got.groups[0] = want.groups[0] as string;
        }
        assert.deepEqual(got, want, `${c.pattern} on ${JSON.stringify(subject)}`);
      });
    });
  });

  it('refuses a property other than a general category, L& and Any (scripts, PCRE\'s X properties), and \\p{Lu} when caseless', () => {
    const expected = judge(dir, ['\\p{Greek}', '\\p{Xan}'].map((pattern) => ({ pattern, caseless: false, subjects: [] })));
    assert.ok(expected.every((result) => Array.isArray(result)), 'pcre2test takes both');
    assert.throws(() => translatePcre('\\p{Greek}'), /pcre2_compile\(\) failed: \\p\{Greek\} is not supported by hitless \(only the general categories, L& and Any are\) in "/);
    assert.throws(() => translatePcre('x\\p{Xan}'), /\\p\{Xan\} is not supported by hitless/);
    assert.throws(() => translatePcre('\\p{Lu}', { caseless: true }), /\\p\{Lu\} in a caseless pattern is not supported by hitless \(PCRE does not fold a property\)/);
  });

  it('refuses what PCRE2 accepts but JavaScript cannot express, in nginx\'s words', () => {
    const expected = judge(dir, refused.map((pattern) => ({ pattern, caseless: false, subjects: [] })));
    refused.forEach((pattern, i) => {
      assert.ok(Array.isArray(expected[i]), `pcre2test refused ${pattern}`);
      assert.throws(() => translatePcre(pattern), (err: unknown) => {
        assert.ok(err instanceof PcreSyntaxError);
        assert.match(err.message, /^pcre2_compile\(\) failed: .* is not supported by hitless \(JavaScript has no equivalent\) in "/);
        return true;
      }, pattern);
    });
  });

  it('reports an invalid pattern with PCRE2\'s reason and offset', () => {
    const expected = judge(dir, invalid.map((pattern) => ({ pattern, caseless: false, subjects: [] })));
    invalid.forEach((pattern, i) => {
      const failure = expected[i];
      assert.equal(typeof failure, 'string', `pcre2test accepted ${pattern}`);
      const parsed = /^Failed: error \d+ at offset (\d+): (.*)$/.exec(failure as string);
      assert.ok(parsed !== null, String(failure));
      assert.throws(() => translatePcre(pattern), (err: unknown) => {
        assert.ok(err instanceof PcreSyntaxError, String(err));
        assert.deepEqual({ reason: err.reason, offset: err.offset }, { reason: parsed[2], offset: Number(parsed[1]) }, pattern);
        return true;
      });
    });
  });

  it('formats the message as ngx_regex_compile() does', () => {
    assert.throws(() => translatePcre('(abc'), { message: 'pcre2_compile() failed: missing closing parenthesis in "(abc"' });
    assert.throws(() => translatePcre('x\\'), { message: 'pcre2_compile() failed: \\ at end of pattern in "x\\"' });
    assert.throws(() => translatePcre('a)b'), { message: 'pcre2_compile() failed: unmatched closing parenthesis in "a)b" at ")b"' });
  });

  it('names the captures in lowercase, as nginx names their variables', () => {
    const translated = translatePcre('(?<Host>[^.]+)\\.(?P<tld>\\w+)');
    assert.deepEqual(translated.names, ['host', 'tld']);
    assert.equal(new RegExp(translated.source).exec('example.com')?.groups?.['host'], 'example');
  });
});

describe('which patterns the backtracking guard covers', () => {
  it('says a pattern is protected exactly when V8\'s linear engine takes it', () => {
    const patterns = [...cases.map((c) => ({ pattern: c.pattern, caseless: c.caseless ?? false })),
      ...['a{16}', 'a{17}', '(?:a{4}){4}', '(?:a+){8}', '(?:a+){9}', '(?:a{2,}){5}', '(?:a{2,}){6}', '^(a+)+$', '(x+x+)+y', 'a{15,}', 'a{16,}', '(?:a{0,3}){5}', '(?:a{0,3}){6}']
        .map((pattern) => ({ pattern, caseless: false }))];
    const translated = patterns.map(({ pattern, caseless }) => translatePcre(bytes(pattern), { caseless }));
    const script = `const list = JSON.parse(process.argv[1]);
      process.stdout.write(JSON.stringify(list.map(([s, f]) => { try { new RegExp(s, f + 'l'); return true; } catch { return false; } })));`;
    const linear = JSON.parse(execFileSync(process.execPath, ['--enable-experimental-regexp-engine', '-e', script, JSON.stringify(translated.map((t) => [t.source, t.flags]))], { timeout: 20_000 }).toString()) as boolean[];
    translated.forEach((t, i) => {
      const what = `${patterns[i]?.pattern} -> /${t.source}/${t.flags}: ${t.unprotected ?? 'protected'}`;
      // A subroutine call is counted unprotected without a look at its repetitions: no claim to check.
      if (t.unprotected !== 'a subroutine call') assert.equal(t.unprotected === undefined, linear[i], what);
    });
  });
});

describe('random patterns, judged by pcre2test', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-pcre-random-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** mulberry32, so that every run draws the same patterns. */
  function random(seed: number): (n: number) => number {
    let state = seed;
    return (n) => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
  }

  it('never reads a pattern otherwise: the same matches, or a refusal', () => {
    const tokens = ['a', 'b', 'A', '.', '\\d', '\\s', '\\w', '\\W', '[a-c]', '[^b]', '[A-]', '(', '(', ')', ')', '(?:', '|', '*', '+', '?', '{1,2}', '{2}', '$', '^',
      '\\b', '(?i)', '(?-i)', '(?i:', '(?s)', '(?x) ', ' ', '#', '\\Z', '\\z', '\\A', '\\n', '-', '[[:alpha:]]', '\\Qa.\\E', '\\x41', '\\h', '\\v', '(?=a)', '(?!b)',
      '(?U)', '*?', '(?m)', '\\1', '(?<n>', '\\k<n>', '(?1)', '(?&n)', '(?-1)'];
    const alphabet = 'aAb\n\r 1-.';
    const draw = random(20261202);
    const items = Array.from({ length: 400 }, () => {
      const pattern = Array.from({ length: 1 + draw(8) }, () => tokens[draw(tokens.length)]).join('');
      const subjects = Array.from({ length: 4 }, () => Array.from({ length: 1 + draw(6) }, () => alphabet[draw(alphabet.length)]).join(''));
      return { pattern, caseless: draw(4) === 0, subjects };
    });
    const expected = judge(dir, items);
    let compared = 0;
    items.forEach((item, i) => {
      const want = expected[i];
      let translated;
      try {
        translated = translatePcre(item.pattern, { caseless: item.caseless });
      } catch (err) {
        assert.ok(err instanceof PcreSyntaxError, String(err));
        // Refused: either PCRE2 refuses it too, or hitless says it cannot express it.
        if (Array.isArray(want)) assert.match(err.message, /is not supported by hitless/, item.pattern);
        return;
      }
      assert.ok(Array.isArray(want), `pcre2test refused ${JSON.stringify(item.pattern)} (${String(want)}), hitless read /${translated.source}/`);
      item.subjects.forEach((subject, j) => {
        const got = run(item.pattern, item.caseless, subject);
        const outcome = want[j];
        // An empty repetition leaves a group unset in JavaScript and empty in PCRE: nginx prints both as "".
        const flat = (o: Outcome | undefined): unknown => (o?.kind === 'match' ? o.groups.map((g, k) => (k === 0 ? g : g === '<unset>' ? '' : g)).join('\u0000').replace(/\u0000+$/, '') : 'none');
        const whole = got.kind === 'match' && outcome?.kind === 'match' && got.groups[0] === `${outcome.groups[0] ?? ''}\\x0a`;
        if (whole && got.kind === 'match') got.groups[0] = outcome?.kind === 'match' ? (outcome.groups[0] as string) : '';
        assert.equal(flat(got), flat(outcome), `${JSON.stringify(item.pattern)}${item.caseless ? 'i' : ''} on ${JSON.stringify(subject)}: /${translated.source}/${translated.flags}`);
        compared++;
      });
    });
    // Most draws compile in both: the comparison is not vacuous.
    assert.ok(compared > 300, `only ${compared} subjects compared`);
  });
});
