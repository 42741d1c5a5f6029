/** Helpers that directive tables of every layer share: values with variables, the http block tree. */
import { parseTime } from '../core/parse.js';
import { parseTemplate, TemplateSyntaxError, type Template } from '../core/variables.js';
import { defineDirective, type AnyDirectiveSpec, type ConfBlockView, type DirectiveContext } from './registry.js';

/** Parses a value with variables, reporting nginx's messages at the directive. */
export function parseValue(text: string, ctx: DirectiveContext): Template {
  try {
    return parseTemplate(text);
  } catch (err) {
    if (err instanceof TemplateSyntaxError) ctx.fail(err.reason);
    throw err;
  }
}

/** Every block of an `http` block's tree (servers, locations), the `http` block first. */
export function blocksOf(http: ConfBlockView): ConfBlockView[] {
  const all: ConfBlockView[] = [];
  const walk = (block: ConfBlockView): void => {
    all.push(block);
    for (const child of block.blocks) if (child.name === 'server' || child.name === 'location') walk(child);
  };
  walk(http);
  return all;
}

/** A `time;` directive, in ms, with nginx's message for a bad value (`"send_timeout" directive invalid value`). */
export function timeDirective(name: string, summary: string, defaultText: string, contexts: DirectiveContext['context'][] = ['http', 'server', 'location']): AnyDirectiveSpec {
  const ms = parseTime(defaultText) as number;
  return defineDirective({
    kind: 'value',
    // Any time directive's value is a number of ms; the name is checked when the table registers.
    name: name as 'send_timeout',
    contexts,
    args: [1],
    syntax: 'time;',
    summary,
    default: () => ms,
    defaultText: `${name} ${defaultText};`,
    parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail(`"${name}" directive invalid value`),
  });
}

/** An `on | off` directive, `true` for on, with its default as nginx's docs write it (`etag on;`). */
export function flagDirective(name: string, summary: string, defaultValue: boolean, contexts: readonly DirectiveContext['context'][] = ['http', 'server', 'location']): AnyDirectiveSpec {
  return defineDirective({
    kind: 'value',
    // Any flag directive's value is a boolean; the name is checked when the table registers.
    name: name as 'proxy_buffering',
    contexts,
    args: 'flag',
    syntax: 'on | off;',
    summary,
    default: () => defaultValue,
    defaultText: `${name} ${defaultValue ? 'on' : 'off'};`,
    parse: (args) => args[0] === 'on',
  });
}
