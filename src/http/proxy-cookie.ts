/**
 * `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags`: the rewriting of an upstream's
 * Set-Cookie headers, as ngx_http_proxy_rewrite_cookie() does it. The value is split into its
 * `name=value` and attributes at each `;` (ngx_http_proxy_parse_cookie()), the Domain and Path
 * attributes are rewritten by the first rule that matches, the flags of the first rule whose
 * cookie name matches are set or removed, and the value is joined again with "; " only when
 * something changed.
 */
import { defineDirective, type AnyDirectiveSpec, type DirectiveContext } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import { toByteString } from '../core/byte-string.js';
import { compileConfigRegex } from './regex.js';
import type { HttpRequest } from './request.js';

/** One `proxy_cookie_domain` or `proxy_cookie_path` rule. */
export type CookieRewriteRule =
  | { readonly kind: 'text'; readonly from: Template; readonly to: Template }
  | { readonly kind: 'regex'; readonly from: RegExp; readonly to: Template };

/** One `proxy_cookie_flags cookie flag ...` rule. */
export interface CookieFlagsRule {
  readonly cookie: { readonly kind: 'text'; readonly name: Template } | { readonly kind: 'regex'; readonly name: RegExp };
  readonly flags: readonly Template[];
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    /** Undefined when not set at any level, `off` when turned off. */
    proxy_cookie_domain: 'off' | readonly CookieRewriteRule[] | undefined;
    proxy_cookie_path: 'off' | readonly CookieRewriteRule[] | undefined;
    proxy_cookie_flags: 'off' | readonly CookieFlagsRule[] | undefined;
  }
}

/** `off` alone, or nginx's "is duplicate" when the level has rules already or `off` twice. */
function parseOff<T>(args: readonly string[], ctx: DirectiveContext, previous: 'off' | readonly T[] | undefined, name: string): 'off' {
  if (args[0] !== 'off') ctx.fail(`invalid parameter "${args[0] ?? ''}"`);
  if (previous !== undefined) ctx.fail(`"${name}" directive is duplicate`);
  return 'off';
}

function rulesSoFar<T>(previous: 'off' | readonly T[] | undefined, ctx: DirectiveContext, name: string): readonly T[] {
  if (previous === 'off') ctx.fail(`"${name}" directive is duplicate`);
  return previous ?? [];
}

/** The directives, for ngx_http_proxy_module's table. */
export const PROXY_COOKIE_DIRECTIVES: readonly AnyDirectiveSpec[] = [
  defineDirective({
    kind: 'value',
    name: 'proxy_cookie_domain',
    contexts: ['http', 'server', 'location'],
    args: [1, 2],
    repeatable: true,
    syntax: 'off; | domain replacement;',
    summary: 'Rewrites the Domain attribute of upstream Set-Cookie headers: a domain matching (without case, a leading dot aside) is replaced, or a regular expression after ~ (caseless) is; variables allowed.',
    default: () => undefined,
    defaultText: 'proxy_cookie_domain off;',
    parse: (args, ctx, previous) => {
      if (args.length === 1) return parseOff(args, ctx, previous, 'proxy_cookie_domain');
      const rules = rulesSoFar(previous, ctx, 'proxy_cookie_domain');
      const [from = '', to = ''] = args;
      // ngx_http_proxy_cookie_domain(): a leading "." of the domain and of its replacement is dropped.
      if (from.startsWith('~')) return [...rules, { kind: 'regex', from: compileConfigRegex(from.slice(1), true, ctx).regex, to: parseValue(to, ctx) }];
      const bare = (text: string): string => (text.startsWith('.') ? text.slice(1) : text);
      return [...rules, { kind: 'text', from: parseValue(bare(from), ctx), to: parseValue(bare(to), ctx) }];
    },
  }),
  defineDirective({
    kind: 'value',
    name: 'proxy_cookie_path',
    contexts: ['http', 'server', 'location'],
    args: [1, 2],
    repeatable: true,
    syntax: 'off; | path replacement;',
    summary: 'Rewrites the Path attribute of upstream Set-Cookie headers: a path starting with the given one has that part replaced, or a regular expression after ~ (~* caseless) replaces it whole; variables allowed.',
    default: () => undefined,
    defaultText: 'proxy_cookie_path off;',
    parse: (args, ctx, previous) => {
      if (args.length === 1) return parseOff(args, ctx, previous, 'proxy_cookie_path');
      const rules = rulesSoFar(previous, ctx, 'proxy_cookie_path');
      const [from = '', to = ''] = args;
      if (from.startsWith('~')) {
        const caseless = from.startsWith('~*');
        return [...rules, { kind: 'regex', from: compileConfigRegex(from.slice(caseless ? 2 : 1), caseless, ctx).regex, to: parseValue(to, ctx) }];
      }
      return [...rules, { kind: 'text', from: parseValue(from, ctx), to: parseValue(to, ctx) }];
    },
  }),
  defineDirective({
    kind: 'value',
    name: 'proxy_cookie_flags',
    contexts: ['http', 'server', 'location'],
    args: '1+',
    repeatable: true,
    syntax: 'off | cookie [flag ...];',
    summary: 'Sets or removes the Secure, HttpOnly and SameSite attributes of upstream Set-Cookie headers for the first cookie name that matches (without case; ~ a caseless regular expression); flags are secure, nosecure, httponly, nohttponly, samesite=strict|lax|none, nosamesite, and may hold variables.',
    default: () => undefined,
    defaultText: 'proxy_cookie_flags off;',
    parse: (args, ctx, previous) => {
      if (args.length === 1) return parseOff(args, ctx, previous, 'proxy_cookie_flags');
      const rules = rulesSoFar(previous, ctx, 'proxy_cookie_flags');
      const [name = '', ...flags] = args;
      const cookie = name.startsWith('~')
        ? { kind: 'regex' as const, name: compileConfigRegex(name.slice(1), true, ctx).regex }
        : { kind: 'text' as const, name: parseValue(name, ctx) };
      return [...rules, { cookie, flags: flags.map((flag) => parseValue(flag, ctx)) }];
    },
  }),
];

/** The templates of a level's cookie rules, for `unknown "x" variable` at -t. */
export function cookieTemplates(rules: { domain: 'off' | readonly CookieRewriteRule[] | undefined; path: 'off' | readonly CookieRewriteRule[] | undefined; flags: 'off' | readonly CookieFlagsRule[] | undefined }): Template[] {
  const out: Template[] = [];
  for (const list of [rules.domain, rules.path]) {
    if (list === undefined || list === 'off') continue;
    for (const rule of list) {
      if (rule.kind === 'text') out.push(rule.from);
      out.push(rule.to);
    }
  }
  if (rules.flags !== undefined && rules.flags !== 'off') {
    for (const rule of rules.flags) {
      if (rule.cookie.kind === 'text') out.push(rule.cookie.name);
      out.push(...rule.flags);
    }
  }
  return out;
}

/** One attribute of a cookie; `key` undefined once it is removed, `value` undefined when it has none. */
interface CookieAttribute {
  key: string | undefined;
  value: string | undefined;
}

type ValueRewrite = (value: string, request: HttpRequest) => string | undefined;

/** Rewrites one Set-Cookie value; undefined leaves it as it came. */
export type CookieRewriter = (value: string, request: HttpRequest) => string | undefined;

/** Compiles a level's cookie rules; undefined when it has none (or all are off). */
export function compileCookieRewriter(
  settings: { domain: 'off' | readonly CookieRewriteRule[] | undefined; path: 'off' | readonly CookieRewriteRule[] | undefined; flags: 'off' | readonly CookieFlagsRule[] | undefined },
  table: VariableTable<HttpRequest>,
): CookieRewriter | undefined {
  const text = (template: Template): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const domains = settings.domain === undefined || settings.domain === 'off' ? [] : settings.domain.map((rule) => compileValueRule(rule, 'domain', text));
  const paths = settings.path === undefined || settings.path === 'off' ? [] : settings.path.map((rule) => compileValueRule(rule, 'path', text));
  const flags = settings.flags === undefined || settings.flags === 'off' ? [] : settings.flags.map((rule) => ({
    matches: rule.cookie.kind === 'regex' ? regexTest(rule.cookie.name) : sameName(text(rule.cookie.name)),
    flags: rule.flags.map(text),
  }));
  if (domains.length === 0 && paths.length === 0 && flags.length === 0) return undefined;
  return (value, request) => {
    const attrs = parseCookie(value);
    const first = attrs[0] as CookieAttribute;
    // ngx_http_proxy_rewrite_cookie(): a cookie without "=" is left alone.
    if (first.value === undefined) return undefined;
    let changed = false;
    for (let i = 1; i < attrs.length; i++) {
      const attr = attrs[i] as CookieAttribute;
      if (attr.value === undefined || attr.key === undefined) continue;
      const key = attr.key.toLowerCase();
      const rules = key === 'domain' ? domains : key === 'path' ? paths : undefined;
      if (rules === undefined) continue;
      for (const rule of rules) {
        const rewritten = rule(attr.value, request);
        if (rewritten === undefined) continue;
        attr.value = rewritten;
        changed = true;
        break;
      }
    }
    for (const rule of flags) {
      if (!rule.matches(first.key ?? '', request)) continue;
      const mask = flagMask(rule.flags.map((flag) => flag(request)));
      if (mask.size > 0) {
        editFlags(attrs, mask);
        changed = true;
      }
      break;
    }
    if (!changed) return undefined;
    return attrs.filter((attr) => attr.key !== undefined).map((attr) => (attr.value === undefined ? attr.key : `${attr.key}=${attr.value}`)).join('; ');
  };
}

/** ngx_http_proxy_rewrite_cookie_flags(): the cookie's name is the pattern's value, without case. */
function sameName(name: CompiledTemplate<HttpRequest>): (cookie: string, request: HttpRequest) => boolean {
  return (cookie, request) => name(request).toLowerCase() === cookie.toLowerCase();
}

/** A regex that is run on a whole string, its captures given to the replacement through `request.captures`. */
function regexTest(regex: RegExp): (value: string, request: HttpRequest) => boolean {
  return (value, request) => {
    const found = regex.exec(value);
    if (found === null) return false;
    request.captures = found;
    return true;
  };
}

function compileValueRule(rule: CookieRewriteRule, attribute: 'domain' | 'path', text: (template: Template) => CompiledTemplate<HttpRequest>): ValueRewrite {
  const to = text(rule.to);
  if (rule.kind === 'regex') {
    // ngx_http_proxy_rewrite_regex_handler(): a match replaces the whole value.
    const matches = regexTest(rule.from);
    return (value, request) => (matches(value, request) ? to(request) : undefined);
  }
  const from = text(rule.from);
  if (attribute === 'domain') {
    // ngx_http_proxy_rewrite_domain_handler(): the whole domain, without case, past a leading ".".
    return (value, request) => {
      const dot = value.startsWith('.') ? '.' : '';
      return from(request).toLowerCase() === value.slice(dot.length).toLowerCase() ? dot + to(request) : undefined;
    };
  }
  // ngx_http_proxy_rewrite_complex_handler(): a prefix, with case.
  return (value, request) => {
    const prefix = from(request);
    return value.startsWith(prefix) ? to(request) + value.slice(prefix.length) : undefined;
  };
}

/** ngx_http_proxy_parse_cookie(): `;`-separated attributes, spaces trimmed around the name and the value. */
function parseCookie(value: string): CookieAttribute[] {
  return value.split(';').map((part) => {
    const eq = part.indexOf('=');
    if (eq === -1) return { key: part.replace(/^ +| +$/g, ''), value: undefined };
    return { key: part.slice(0, eq).replace(/^ +| +$/g, ''), value: part.slice(eq + 1).replace(/^ +| +$/g, '') };
  });
}

const FLAG_NAMES: ReadonlySet<string> = new Set(['secure', 'nosecure', 'httponly', 'nohttponly', 'samesite=strict', 'samesite=lax', 'samesite=none', 'nosamesite']);

/** The flags named, lowercased; empty values and unknown names are skipped (nginx logs them at debug). */
function flagMask(values: readonly string[]): Set<string> {
  const mask = new Set<string>();
  for (const value of values) {
    const flag = value.toLowerCase();
    if (FLAG_NAMES.has(flag)) mask.add(flag);
  }
  return mask;
}

/** ngx_http_proxy_edit_cookie_flags(): existing attributes set, replaced or removed; missing ones appended. */
function editFlags(attrs: CookieAttribute[], mask: Set<string>): void {
  const sameSite = ['samesite=strict', 'samesite=lax', 'samesite=none'].find((flag) => mask.has(flag));
  let addSecure = mask.has('secure');
  let addHttpOnly = mask.has('httponly');
  let addSameSite = sameSite;
  for (let i = 1; i < attrs.length; i++) {
    const attr = attrs[i] as CookieAttribute;
    const key = attr.key?.toLowerCase();
    if (key === 'secure') {
      if (addSecure) addSecure = false;
      else if (mask.has('nosecure')) attr.key = undefined;
    } else if (key === 'httponly') {
      if (addHttpOnly) addHttpOnly = false;
      else if (mask.has('nohttponly')) attr.key = undefined;
    } else if (key === 'samesite') {
      if (addSameSite !== undefined) {
        const wanted = sameSiteValue(addSameSite);
        addSameSite = undefined;
        if (attr.value?.toLowerCase() !== wanted.toLowerCase()) {
          attr.key = 'SameSite';
          attr.value = wanted;
        }
      } else if (mask.has('nosamesite')) attr.key = undefined;
    }
  }
  if (addSecure) attrs.push({ key: 'Secure', value: undefined });
  if (addHttpOnly) attrs.push({ key: 'HttpOnly', value: undefined });
  if (addSameSite !== undefined) attrs.push({ key: 'SameSite', value: sameSiteValue(addSameSite) });
}

function sameSiteValue(flag: string): string {
  return flag === 'samesite=strict' ? 'Strict' : flag === 'samesite=lax' ? 'Lax' : 'None';
}
