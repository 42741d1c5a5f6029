import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileTemplate,
  isConstantTemplate,
  parseTemplate,
  TemplateSyntaxError,
  templateVariables,
  UnknownVariableError,
  VariableTable,
} from '../../src/core/variables.js';

interface Ctx {
  readonly vars: Record<string, string>;
  readonly captures: string[];
}

const table = new VariableTable<Ctx>((index) => (ctx) => ctx.captures[index])
  .define('host', (ctx) => ctx.vars.host)
  .define('missing', () => undefined)
  .definePrefix('http_', (suffix) => (ctx) => ctx.vars[`header:${suffix}`]);

const ctx: Ctx = { vars: { host: 'example.com', 'header:user_agent': 'curl' }, captures: ['/all', 'first'] };

function reasonOf(source: string): string {
  try {
    parseTemplate(source);
  } catch (err) {
    assert.ok(err instanceof TemplateSyntaxError);
    return err.reason;
  }
  return assert.fail(`no error for ${source}`);
}

describe('variables: parsing values as ngx_http_script_compile() does', () => {
  it('splits text, $name, ${name} and captures', () => {
    assert.deepEqual(parseTemplate('a $host ${http_x}y $1/').parts, [
      { kind: 'text', text: 'a ' },
      { kind: 'variable', name: 'host' },
      { kind: 'text', text: ' ' },
      { kind: 'variable', name: 'http_x' },
      { kind: 'text', text: 'y ' },
      { kind: 'capture', index: 1 },
      { kind: 'text', text: '/' },
    ]);
  });

  it('ends a name at the first character outside [A-Za-z0-9_] and lowercases it', () => {
    assert.deepEqual(templateVariables(parseTemplate('$Host.$request_uri-$a_b9')), ['host', 'request_uri', 'a_b9']);
  });

  it('reads $1 as a name when captures are off (log_format)', () => {
    assert.deepEqual(parseTemplate('$1', { captures: false }).parts, [{ kind: 'variable', name: '1' }]);
  });

  it('knows constant values', () => {
    assert.equal(isConstantTemplate(parseTemplate('plain text')), true);
    assert.equal(isConstantTemplate(parseTemplate('$host')), false);
    assert.equal(isConstantTemplate(parseTemplate('')), true);
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.equal(reasonOf('a$'), 'invalid variable name in "a$"');
    assert.equal(reasonOf('${'), 'invalid variable name in "${"');
    assert.equal(reasonOf('${}'), 'invalid variable name in "${}"');
    assert.equal(reasonOf('$-'), 'invalid variable name in "$-"');
    assert.equal(reasonOf('${host'), 'the closing bracket in "host" variable is missing');
    assert.equal(reasonOf('${ho-st}'), 'the closing bracket in "ho" variable is missing');
  });
});

describe('variables: compiled values', () => {
  it('evaluates variables, prefix families and captures', () => {
    const value = compileTemplate(parseTemplate('$host ${http_user_agent} $1'), table);
    assert.equal(value(ctx), 'example.com curl first');
  });

  it('resolves names caselessly, as nginx does', () => {
    assert.equal(compileTemplate(parseTemplate('$HOST'), table)(ctx), 'example.com');
  });

  it('returns constants without evaluating anything', () => {
    assert.equal(compileTemplate(parseTemplate('just text'), table)(ctx), 'just text');
    assert.equal(compileTemplate(parseTemplate(''), table)(ctx), '');
  });

  it('writes notFound for a variable that is not found, and escapes only variable values', () => {
    const value = compileTemplate(parseTemplate('"$missing" "$host"'), table, { notFound: '-', escape: (v) => v.toUpperCase() });
    assert.equal(value(ctx), '"-" "EXAMPLE.COM"');
  });

  it('converts literal text once, at compile time', () => {
    let calls = 0;
    const value = compileTemplate(parseTemplate('a$host'), table, { literal: (t) => { calls++; return t.toUpperCase(); } });
    value(ctx);
    value(ctx);
    assert.equal(value(ctx), 'Aexample.com');
    assert.equal(calls, 1);
  });

  it('refuses an unknown variable: unknown "x" variable', () => {
    assert.throws(() => compileTemplate(parseTemplate('$nope'), table), (err: unknown) => err instanceof UnknownVariableError && err.message === 'unknown "nope" variable');
    assert.equal(table.has('http_anything'), true);
    // ngx_http_get_variable(): the prefix alone is a variable (`$arg_`), never found.
    assert.equal(table.has('http_'), true);
    assert.equal(compileTemplate(parseTemplate('[$http_]'), table)(ctx), '[]');
  });
});
