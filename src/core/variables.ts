/**
 * The variable engine shared by `http` and `stream`: a value such as `"$scheme://$host${uri}"` is
 * parsed once when the configuration is read (nginx's `ngx_http_script_compile()` rules), checked
 * against the variables the configuration knows (`unknown "x" variable`), and compiled once per
 * configuration generation into a closure that only concatenates at request time.
 */

/** One piece of a parsed value: literal text, a named variable, or a regex capture (`$1`..`$9`). */
export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'variable'; readonly name: string }
  | { readonly kind: 'capture'; readonly index: number };

/** A value with variables, parsed but not yet bound to any variable table. */
export interface Template {
  /** The value as written in the configuration. */
  readonly source: string;
  readonly parts: readonly TemplatePart[];
}

/** A value that cannot be parsed; `reason` is nginx's wording (`invalid variable name in "$"`). */
export class TemplateSyntaxError extends Error {
  readonly reason: string;
  /** Where the offending `$` is in the source, for callers that word the error their own way. */
  readonly offset: number;

  constructor(reason: string, offset: number) {
    super(reason);
    this.name = 'TemplateSyntaxError';
    this.reason = reason;
    this.offset = offset;
  }
}

/** Options of {@link parseTemplate}. */
export interface ParseTemplateOptions {
  /** Read `$1`..`$9` as regex captures, as `ngx_http_script_compile()` does. Default: true. */
  readonly captures?: boolean;
}

function isNameChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x5f;
}

/**
 * Parses `text $var ${var}text $1` into parts. A name is `[A-Za-z0-9_]+`; `${name}` ends at `}`.
 * Throws {@link TemplateSyntaxError} with nginx's messages for `$` alone, `${}` and a missing `}`.
 */
export function parseTemplate(source: string, options: ParseTemplateOptions = {}): Template {
  const captures = options.captures ?? true;
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < source.length) {
    if (source[i] !== '$') {
      const next = source.indexOf('$', i);
      const end = next === -1 ? source.length : next;
      parts.push({ kind: 'text', text: source.slice(i, end) });
      i = end;
      continue;
    }
    const dollar = i;
    const invalid = (): TemplateSyntaxError => new TemplateSyntaxError(`invalid variable name in "${source}"`, dollar);
    i++;
    if (i === source.length) throw invalid();
    const first = source.charCodeAt(i);
    if (captures && first >= 0x31 && first <= 0x39) {
      parts.push({ kind: 'capture', index: first - 0x30 });
      i++;
      continue;
    }
    let bracket = false;
    if (source[i] === '{') {
      bracket = true;
      i++;
      if (i === source.length) throw invalid();
    }
    const start = i;
    while (i < source.length && isNameChar(source.charCodeAt(i))) i++;
    const name = source.slice(start, i);
    if (bracket) {
      if (source[i] !== '}') throw new TemplateSyntaxError(`the closing bracket in "${name}" variable is missing`, dollar);
      i++;
    }
    if (name.length === 0) throw invalid();
    parts.push({ kind: 'variable', name: name.toLowerCase() });
  }
  return { source, parts: mergeText(parts) };
}

function mergeText(parts: TemplatePart[]): TemplatePart[] {
  const merged: TemplatePart[] = [];
  for (const part of parts) {
    const last = merged[merged.length - 1];
    if (part.kind === 'text' && last?.kind === 'text') merged[merged.length - 1] = { kind: 'text', text: last.text + part.text };
    else merged.push(part);
  }
  return merged;
}

/** True when the value holds no variable and no capture. */
export function isConstantTemplate(template: Template): boolean {
  return template.parts.every((part) => part.kind === 'text');
}

/** The names of the variables a value refers to, in order, without duplicates. */
export function templateVariables(template: Template): string[] {
  const names = new Set<string>();
  for (const part of template.parts) if (part.kind === 'variable') names.add(part.name);
  return [...names];
}

/** Reads one variable for one request or session; undefined means "not found" (nginx's `not_found`). */
export type VariableGetter<C> = (ctx: C) => string | undefined;

/**
 * The variables of one subsystem (`http`, `stream`): exact names (`$host`), prefix families
 * (`$http_`, `$arg_`, `$cookie_`) whose getter is built once per name, and regex captures.
 */
export class VariableTable<C> {
  readonly #exact = new Map<string, VariableGetter<C>>();
  readonly #prefixes: { prefix: string; make: (suffix: string) => VariableGetter<C> }[] = [];
  readonly #capture: (index: number) => VariableGetter<C>;
  /** The names {@link resolve} was asked for (lower case): what the configuration refers to. */
  readonly #referenced = new Set<string>();

  /** `capture(n)` builds the getter of `$n`; default: always not found. */
  constructor(capture: (index: number) => VariableGetter<C> = () => () => undefined) {
    this.#capture = capture;
  }

  /** Adds a variable; a later definition of the same name replaces the earlier one. */
  define(name: string, get: VariableGetter<C>): this {
    this.#exact.set(name.toLowerCase(), get);
    return this;
  }

  /** Adds a family of variables: `$<prefix><suffix>`, the getter made once per suffix. */
  definePrefix(prefix: string, make: (suffix: string) => VariableGetter<C>): this {
    this.#prefixes.push({ prefix: prefix.toLowerCase(), make });
    this.#prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
    return this;
  }

  /** True when `name` is a defined variable or belongs to a prefix family. */
  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  /** The getter of a variable, or undefined when nothing defines it. */
  resolve(name: string): VariableGetter<C> | undefined {
    const lower = name.toLowerCase();
    this.#referenced.add(lower);
    const exact = this.#exact.get(lower);
    if (exact !== undefined) return exact;
    for (const { prefix, make } of this.#prefixes) {
      // ngx_http_get_variable(): the prefix alone names a variable too (`$arg_`), one never found.
      if (lower.startsWith(prefix)) return lower.length === prefix.length ? () => undefined : make(lower.slice(prefix.length));
    }
    return undefined;
  }

  /**
   * True once a value was compiled (or a name resolved) that refers to `name`: a variable that
   * costs something to keep ready (`$request_length` over HTTP/2) is kept only then.
   */
  referenced(name: string): boolean {
    return this.#referenced.has(name.toLowerCase());
  }

  /** The getter of the regex capture `$index`. */
  capture(index: number): VariableGetter<C> {
    return this.#capture(index);
  }
}

/** A variable no table defines: nginx refuses the configuration with `unknown "name" variable`. */
export class UnknownVariableError extends Error {
  readonly variable: string;

  constructor(variable: string) {
    super(`unknown "${variable}" variable`);
    this.name = 'UnknownVariableError';
    this.variable = variable;
  }
}

/** Options of {@link compileTemplate}. */
export interface CompileTemplateOptions {
  /** Applied to every variable value, not to literal text (`log_format escape=`). Default: none. */
  readonly escape?: (value: string) => string;
  /** What a variable that is not found produces (`-` in access logs). Default: the empty string. */
  readonly notFound?: string;
  /** Applied once to every literal piece at compile time (to byte strings, for instance). */
  readonly literal?: (text: string) => string;
}

/** A value ready to evaluate: returns the text for one request or session. */
export type CompiledTemplate<C> = (ctx: C) => string;

/**
 * Binds a parsed value to a variable table: every name is resolved now, so evaluating costs one
 * getter call per variable and one concatenation. Throws {@link UnknownVariableError}.
 */
export function compileTemplate<C>(template: Template, table: VariableTable<C>, options: CompileTemplateOptions = {}): CompiledTemplate<C> {
  const literal = options.literal ?? ((text: string) => text);
  const notFound = options.notFound ?? '';
  const escape = options.escape;
  const pieces: (string | VariableGetter<C>)[] = template.parts.map((part) => {
    if (part.kind === 'text') return literal(part.text);
    if (part.kind === 'capture') return table.capture(part.index);
    const get = table.resolve(part.name);
    if (get === undefined) throw new UnknownVariableError(part.name);
    return get;
  });
  const evaluate = (get: VariableGetter<C>, ctx: C): string => {
    const value = get(ctx);
    if (value === undefined) return notFound;
    return escape === undefined ? value : escape(value);
  };
  if (pieces.length === 0) return () => '';
  if (pieces.length === 1) {
    const only = pieces[0] as string | VariableGetter<C>;
    if (typeof only === 'string') return () => only;
    return (ctx) => evaluate(only, ctx);
  }
  if (pieces.every((piece) => typeof piece === 'string')) {
    const constant = pieces.join('');
    return () => constant;
  }
  return (ctx) => {
    let out = '';
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string | VariableGetter<C>;
      out += typeof piece === 'string' ? piece : evaluate(piece, ctx);
    }
    return out;
  };
}
