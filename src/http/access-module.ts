/**
 * nginx's `ngx_http_access_module`: `allow` and `deny` rules, checked in the order written
 * (`allow` and `deny` lines interleave), the first match deciding; and `satisfy`, the core
 * directive that says how the access phase combines them with `auth_basic`
 * (`ngx_http_core_access_phase()`).
 */
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { timeDirective } from '../conf/values.js';
import { isTrusted, parseCidr, type TrustedBlock } from './realip.js';

/** One `allow` or `deny` line. */
export interface AccessRule {
  readonly deny: boolean;
  /** `all`, `unix:`, or an address block. */
  readonly match: { readonly kind: 'all' } | { readonly kind: 'unix' } | { readonly kind: 'block'; readonly block: TrustedBlock };
  /** Where it was written, to put `allow` and `deny` lines of one block back in order. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    allow: readonly AccessRule[];
    deny: readonly AccessRule[];
    satisfy: 'all' | 'any';
    auth_delay: number;
  }
}

/** `ngx_http_access_rule()`: `all`, `unix:`, or `ngx_ptocidr()`'s address[/bits]. */
function parseRule(deny: boolean) {
  return ([text = '']: readonly string[], ctx: DirectiveContext, previous: readonly AccessRule[] | undefined): readonly AccessRule[] => {
    const where = { file: ctx.node.file, line: ctx.node.line, column: ctx.node.words[0]?.start ?? 0 };
    let match: AccessRule['match'];
    if (text === 'all') match = { kind: 'all' };
    else if (text === 'unix:') match = { kind: 'unix' };
    else {
      const block = parseCidr(text);
      if (block === undefined || block.family === 'unix') ctx.fail(`invalid parameter "${text}"`);
      if (!sameAsWritten(text, block)) ctx.warn(`low address bits of ${text} are meaningless`);
      match = { kind: 'block', block };
    }
    return [...(previous ?? []), { deny, match, ...where }];
  };
}

/** False when `ngx_ptocidr()` cleared address bits below the mask (it returns NGX_DONE then). */
function sameAsWritten(text: string, block: TrustedBlock): boolean {
  const slash = text.indexOf('/');
  if (slash === -1) return true;
  const whole = parseCidr(text.slice(0, slash));
  return whole !== undefined && whole.family !== 'unix' && block.family !== 'unix' && whole.bytes.every((byte, i) => byte === block.bytes[i]);
}

/**
 * The rules a level checks: those of the nearest block (this one, then outward) that writes any
 * `allow` or `deny` (ngx_http_access_merge_loc_conf(): a level with rules of its own replaces the
 * outer ones), in the order they were written. Empty when no level has any.
 */
export function compileAccessRules(block: ConfBlockView): readonly AccessRule[] {
  for (let at: ConfBlockView | undefined = block; at !== undefined; at = at.parent) {
    if (!at.isSet('allow') && !at.isSet('deny')) continue;
    return merge(at.isSet('allow') ? at.get('allow') : [], at.isSet('deny') ? at.get('deny') : []);
  }
  return [];
}

/**
 * The two lists, each in the order written, merged by position in the file. Lines of different
 * (included) files cannot be ordered by position: there the allow line goes first.
 */
function merge(allows: readonly AccessRule[], denies: readonly AccessRule[]): AccessRule[] {
  const out: AccessRule[] = [];
  let i = 0;
  let j = 0;
  while (i < allows.length && j < denies.length) {
    const a = allows[i] as AccessRule;
    const d = denies[j] as AccessRule;
    const denyFirst = a.file === d.file && (d.line - a.line || d.column - a.column) < 0;
    if (denyFirst) {
      out.push(d);
      j++;
    } else {
      out.push(a);
      i++;
    }
  }
  return [...out, ...allows.slice(i), ...denies.slice(j)];
}

/**
 * `ngx_http_access_handler()`: 'deny' or 'allow' for the first rule of the address's family that
 * matches, undefined when none does. A v4-mapped IPv6 client is checked as IPv4 (when any IPv4
 * rule exists, as nginx does), a unix-socket client against `unix:` and `all` only.
 */
export function checkAccess(rules: readonly AccessRule[], address: string): 'allow' | 'deny' | undefined {
  const unix = address.startsWith('unix:');
  // Without IPv4 rules (`all` is one), nginx checks a v4-mapped address against the IPv6 ones as it is.
  const mappedAsV6 = /^::ffff:[0-9.]+$/i.test(address)
    && !rules.some((rule) => rule.match.kind === 'all' || (rule.match.kind === 'block' && rule.match.block.family === 4));
  for (const rule of rules) {
    const match = rule.match;
    let hit: boolean;
    if (match.kind === 'all') hit = true;
    else if (match.kind === 'unix') hit = unix;
    else if (mappedAsV6) hit = inV6Block(address, match.block);
    else hit = !unix && isTrusted(address, [match.block]);
    if (hit) return rule.deny ? 'deny' : 'allow';
  }
  return undefined;
}

/** `ngx_http_access_inet6()` for a v4-mapped address: its 16 bytes against an IPv6 block. */
function inV6Block(address: string, block: TrustedBlock): boolean {
  const own = parseCidr(address);
  if (own === undefined || own.family !== 6 || block.family !== 6) return false;
  for (let bit = 0; bit < block.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if (((own.bytes[bit >> 3] as number) & mask) !== ((block.bytes[bit >> 3] as number) & mask)) return false;
  }
  return true;
}

const CONTEXTS = ['http', 'server', 'location', 'limit_except'] as const;

/** The access module's directives, and `satisfy` and `auth_delay` (core directives in nginx, kept beside the phase they drive). */
export const httpAccessModule: ConfModule = {
  name: 'ngx_http_access_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'allow',
      contexts: CONTEXTS,
      args: [1],
      repeatable: true,
      inherit: false,
      syntax: 'address | CIDR | unix: | all;',
      summary: 'Allows the client address (after realip), block, unix-socket clients or everyone; allow and deny are checked in order, the first match wins.',
      default: () => [],
      defaultText: '—',
      parse: parseRule(false),
    }),
    defineDirective({
      kind: 'value',
      name: 'deny',
      contexts: CONTEXTS,
      args: [1],
      repeatable: true,
      inherit: false,
      syntax: 'address | CIDR | unix: | all;',
      summary: 'Denies (403, "access forbidden by rule") the client address (after realip), block, unix-socket clients or everyone.',
      default: () => [],
      defaultText: '—',
      parse: parseRule(true),
    }),
    defineDirective({
      kind: 'value',
      name: 'satisfy',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'all | any;',
      summary: 'all: the request must pass both allow/deny and auth_basic; any: passing one of them is enough.',
      default: () => 'all',
      defaultText: 'satisfy all;',
      parse: ([value = ''], ctx): 'all' | 'any' => {
        // ngx_conf_set_enum_slot(): any case, and its message.
        const word = value.toLowerCase();
        return word === 'all' || word === 'any' ? word : ctx.fail(`invalid value "${value}"`);
      },
    }),
    timeDirective('auth_delay', 'How long a 401 of the access phase waits before it is sent, to slow down password guessing (ngx_http_core_auth_delay()).', '0s'),
  ],
};
