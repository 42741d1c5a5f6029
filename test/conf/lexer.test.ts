import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigSyntaxError } from '../../src/core/errors.js';
import { Lexer, hasVariables, type Statement } from '../../src/conf/lexer.js';

function statements(text: string): Statement[] {
  const lexer = new Lexer(text, '/t.conf');
  const out: Statement[] = [];
  for (;;) {
    const statement = lexer.next();
    out.push(statement);
    if (statement.terminator === 'eof') return out;
  }
}

function words(text: string): string[][] {
  return statements(text)
    .filter((s) => s.words.length > 0)
    .map((s) => s.words.map((w) => w.value));
}

function syntaxError(text: string): string {
  try {
    statements(text);
  } catch (err) {
    assert.ok(err instanceof ConfigSyntaxError, `expected a syntax error, got ${String(err)}`);
    return err.message;
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

describe('lexer', () => {
  it('reads directives, blocks and terminators with their lines', () => {
    const result = statements('worker_processes 2;\nevents {\n}\n');
    assert.deepEqual(result.map((s) => [s.words.map((w) => w.value), s.terminator, s.line]), [
      [['worker_processes', '2'], ';', 1],
      [['events'], '{', 2],
      [[], '}', 3],
      [[], 'eof', 4],
    ]);
  });

  it('reports the line of the terminator, as nginx does', () => {
    const [first] = statements('listen\n  80\n  ;');
    assert.equal(first?.line, 3);
    assert.equal(first?.words[1]?.line, 2);
  });

  it('unescapes \\" \\\' \\\\ \\t \\r \\n and keeps any other backslash', () => {
    assert.deepEqual(words(String.raw`a "q\"d" 'q\'s' "b\\s" "t\tr\rn\n" "\d\$x";`), [
      ['a', 'q"d', "q's", 'b\\s', 't\tr\rn\n', '\\d\\$x'],
    ]);
  });

  it('keeps braces inside quotes and ${} inside words', () => {
    assert.deepEqual(words('return 200 "{ok}";\nset $a ${b}c;\nx \'}\';'), [
      ['return', '200', '{ok}'],
      ['set', '$a', '${b}c'],
      ['x', '}'],
    ]);
  });

  it('treats # as a comment only at the start of a word, never inside quotes', () => {
    assert.deepEqual(words('# whole line\na "b # c" d#e; # trailing\n#x;'), [['a', 'b # c', 'd#e']]);
  });

  it('lets an escaped space or semicolon be part of a word', () => {
    assert.deepEqual(words('a b\\ c d\\;e;'), [['a', 'b\\ c', 'd\\;e']]);
  });

  it('accepts a word that contains a closing brace without a space', () => {
    assert.deepEqual(words('a b};'), [['a', 'b}']]);
  });

  it('accepts ) right after a quoted word, for if conditions', () => {
    assert.deepEqual(words('if ($a = "b") {'), [['if', '($a', '=', 'b', ')']]);
  });

  it('records offsets of words as written, quotes included', () => {
    const text = 'ssl_certificate "/a b/c.pem";';
    const [statement] = statements(text);
    const word = statement?.words[1];
    assert.equal(text.slice(word?.start, word?.end), '"/a b/c.pem"');
    assert.equal(word?.quoted, true);
  });

  it('refuses what nginx refuses, with its words and line', () => {
    assert.equal(syntaxError(';'), 'unexpected ";" in /t.conf:1');
    assert.equal(syntaxError('\n{'), 'unexpected "{" in /t.conf:2');
    assert.equal(syntaxError('a }'), 'unexpected "}" in /t.conf:1');
    assert.equal(syntaxError('a "b"c;'), 'unexpected "c" in /t.conf:1');
    assert.equal(syntaxError('a\nb'), 'unexpected end of file, expecting ";" or "}" in /t.conf:2');
    assert.equal(syntaxError('a "unterminated;\n'), 'unexpected end of file, expecting ";" or "}" in /t.conf:2');
  });

  it('words the end of a -g parameter differently', () => {
    const lexer = new Lexer('daemon off', 'command line', { fromParameter: true });
    assert.throws(() => lexer.next(), { message: 'unexpected end of parameter, expecting ";" in command line' });
  });

  it('detects variables', () => {
    assert.equal(hasVariables('/certs/$ssl_server_name.crt'), true);
    assert.equal(hasVariables('${host}x'), true);
    assert.equal(hasVariables('price $ 5'), false);
  });
});
