/** Helpers that directive tables of every layer share: values with variables, the http block tree. */
import { parseTemplate, TemplateSyntaxError, type Template } from '../core/variables.js';
import type { ConfBlockView, DirectiveContext } from './registry.js';

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
