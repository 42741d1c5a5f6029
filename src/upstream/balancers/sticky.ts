/**
 * nginx's `ngx_http_upstream_sticky_module` over whatever balancing method the group has. Each
 * peer has a server ID (its `route=`, else the MD5 of its address in hex, `peer.sid`); a request
 * that names one goes to the first peer with that ID while the peer is usable, `drain` included
 * (a draining peer keeps its bound clients and gets no new ones), else the method chooses. The
 * ID is looked up among the primaries, and among the backups once no primary is left to the
 * request, as nginx's `pc->hint` is read by each `peer.get` over the set it is on
 * (ngx_http_upstream_get_rr_peer_by_sid()). Three ways to find the ID:
 *
 * - `sticky cookie name ...`: the ID is the cookie `name`; every response carries
 *   `Set-Cookie: name=ID` for the peer that answered (ngx_http_upstream_sticky_cookie_insert()).
 * - `sticky route $var ...`: the ID is the first non-empty variable.
 * - `sticky learn create=$var lookup=$var zone=name:size [timeout=t] [header]`: the first
 *   non-empty `lookup=` variable is a session ID, mapped to the ID of the peer that answered the
 *   request whose first non-empty `create=` variable (or, without one, whose lookup) was that
 *   session, once it completed (or once its header arrived, with `header`). A session unused
 *   (not learned again) for `timeout` (10m) is forgotten.
 */
import { compileTemplate, parseTemplate, type CompiledTemplate, type Template, type VariableTable } from '../../core/variables.js';
import { parseSize, parseTime } from '../../core/parse.js';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { parseValue } from '../../conf/values.js';
import { setBalancerWrapper } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { StickySessions, type LearnZoneSpec } from '../sticky-sessions.js';
import type { UpstreamRuntime } from '../upstream-runtime.js';
import { chosen, type Balanced, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';

/** `sticky cookie name [expires=time|max] [domain=d] [path=p] [samesite=...] [httponly] [secure]`. */
export interface StickyCookieSetting {
  readonly kind: 'cookie';
  readonly cookie: string;
  /** Seconds; {@link EXPIRES_MAX} for `max`; undefined for a session cookie (the default). */
  readonly expiresSeconds: number | undefined;
  readonly domain: Template | undefined;
  readonly path: string | undefined;
  readonly sameSite: Template | undefined;
  readonly httpOnly: boolean;
  readonly secure: boolean;
  /** `$cookie_<name>`. */
  readonly lookup: readonly Template[];
}

/** `sticky route $variable ...`. */
export interface StickyRouteSetting {
  readonly kind: 'route';
  readonly lookup: readonly Template[];
}

/** `sticky learn create=$v lookup=$v zone=name:size [timeout=time] [header]`. */
export interface StickyLearnSetting {
  readonly kind: 'learn';
  readonly lookup: readonly Template[];
  readonly create: readonly Template[];
  readonly zone: string;
  /** Bytes. */
  readonly zoneSize: number;
  /** Milliseconds; default 10 minutes. */
  readonly timeoutMs: number;
  /** `header`: learn once the response header arrives, not once the request completes. */
  readonly header: boolean;
  /** The group's name: a zone keeps its sessions across a reload while the same group uses it. */
  readonly group: string;
}

/** The `sticky` directive of a group. */
export type StickySetting = StickyCookieSetting | StickyRouteSetting | StickyLearnSetting;

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    sticky: StickySetting | undefined;
  }
}

/** `expires=max`: NGX_HTTP_STICKY_COOKIE_MAX_EXPIRES, written as the fixed date below. */
const EXPIRES_MAX = 2_145_916_555;
const EXPIRES_MAX_TEXT = '; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000';
const SAMESITE = new Set(['strict', 'lax', 'none']);

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ngx_http_cookie_time(): `Thu, 28-Feb-13 08:50:04 GMT`, a two-digit year up to 2037. */
export function cookieTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  const year = d.getUTCFullYear();
  return `${WEEKDAYS[d.getUTCDay()] ?? ''}, ${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()] ?? ''}-${year > 2037 ? year : two(year % 100)} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} GMT`;
}

/** The `sticky` setting compiled against the variables of the generation. */
interface CompiledSticky<R> {
  readonly setting: StickySetting;
  readonly lookup: readonly CompiledTemplate<R>[];
  readonly create: readonly CompiledTemplate<R>[];
  readonly domain: CompiledTemplate<R> | undefined;
  readonly sameSite: CompiledTemplate<R> | undefined;
  /** `learn`: where the sessions are, and the zone they are in. */
  readonly sessions: StickySessions | undefined;
  readonly zone: LearnZoneSpec | undefined;
}

/** ngx_http_upstream_sticky_get_id(): the first variable that is found and not empty. */
function firstValue<R>(templates: readonly CompiledTemplate<R>[], request: R): string | undefined {
  for (const template of templates) {
    const value = template(request);
    if (value !== '') return value;
  }
  return undefined;
}

/** The first peer of `peers` with server ID `sid`, if the request may go to it (usable, not tried). */
function peerBySid(peers: readonly Peer[], sid: string, tried: TriedSet, now: number): Peer | undefined {
  const peer = peers.find((candidate) => candidate.sid === sid);
  // usable(), not available(): a draining peer keeps the clients bound to it.
  return peer !== undefined && !tried.has(peer) && peer.usable(now) ? peer : undefined;
}

/** One request: the peer its ID names, if usable, else the method. */
class StickyPicker<R extends Balanced> implements PeerPicker {
  readonly #inner: PeerPicker;
  readonly #sets: PeerSets;
  readonly #sticky: CompiledSticky<R>;
  readonly #request: R | undefined;
  /** The server ID the request names (the cookie, the route, the learned session's). */
  readonly #hint: string | undefined;
  /** The session ID the request looked up (`learn`). */
  readonly #session: string | undefined;
  #learned = false;

  constructor(inner: PeerPicker, sets: PeerSets, sticky: CompiledSticky<R>, request: R | undefined) {
    this.#inner = inner;
    this.#sets = sets;
    this.#sticky = sticky;
    this.#request = request;
    const id = request === undefined ? undefined : firstValue(sticky.lookup, request);
    const { sessions, zone } = sticky;
    this.#session = sessions === undefined ? undefined : id;
    this.#hint = sessions === undefined || zone === undefined || id === undefined ? id : sessions.lookup(zone, id, Date.now());
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    const hint = this.#hint;
    if (hint !== undefined) {
      const { primaries, backups } = this.#sets;
      // The backups once no primary is left to this request, as the method moves on to them.
      const onBackups = backups.length > 0 && !primaries.some((peer) => !tried.has(peer) && peer.available(now));
      const bound = peerBySid(onBackups ? backups : primaries, hint, tried, now);
      if (bound !== undefined) {
        this.#inner.bound?.(bound, tried, now);
        return chosen(bound, now);
      }
    }
    return this.#inner.pick(tried, now);
  }

  responseHeaders(peer: Peer): readonly string[] {
    const setting = this.#sticky.setting;
    if (setting.kind === 'learn' && setting.header) this.#learn(peer);
    if (setting.kind !== 'cookie') return [];
    return ['Set-Cookie', this.#cookie(setting, peer)];
  }

  answered(peer: Peer): void {
    const setting = this.#sticky.setting;
    if (setting.kind === 'learn' && !setting.header) this.#learn(peer);
  }

  /** ngx_http_upstream_sticky_learn_peer(), once per request. */
  #learn(peer: Peer): void {
    const { sessions, zone } = this.#sticky;
    const request = this.#request;
    if (sessions === undefined || zone === undefined || request === undefined || this.#learned) return;
    this.#learned = true;
    const created = firstValue(this.#sticky.create, request);
    const session = created ?? this.#session;
    if (session !== undefined) sessions.learn(zone, session, peer.sid, created !== undefined, Date.now());
  }

  /** ngx_http_upstream_sticky_cookie_insert(): name=ID, expires, domain, httponly, secure, samesite, path. */
  #cookie(setting: StickyCookieSetting, peer: Peer): string {
    const request = this.#request;
    let cookie = `${setting.cookie}=${peer.sid}`;
    const expires = setting.expiresSeconds;
    if (expires === EXPIRES_MAX) cookie += EXPIRES_MAX_TEXT;
    else if (expires !== undefined) cookie += `; expires=${cookieTime(Date.now() + expires * 1000)}; max-age=${expires}`;
    const domain = request === undefined ? '' : (this.#sticky.domain?.(request) ?? '');
    if (domain !== '') cookie += `; domain=${domain}`;
    if (setting.httpOnly) cookie += '; httponly';
    if (setting.secure) cookie += '; secure';
    let sameSite = request === undefined ? '' : (this.#sticky.sameSite?.(request) ?? '');
    // A value from variables that is none of the three is sent as strict.
    if (sameSite !== '' && !SAMESITE.has(sameSite.toLowerCase())) sameSite = 'strict';
    if (sameSite !== '') cookie += `; samesite=${sameSite}`;
    if (setting.path !== undefined) cookie += `; path=${setting.path}`;
    return cookie;
  }
}

/**
 * Wraps a group's method with `sticky`; `variables` compiles its lookups; `runtime` holds the
 * learned sessions every worker shares (without it, the balancer keeps its own).
 */
export function stickyBalancer<R extends Balanced>(inner: Balancer<R>, sets: PeerSets, setting: StickySetting, variables: VariableTable<R> | undefined, runtime?: UpstreamRuntime): Balancer<R> {
  const compile = (template: Template): CompiledTemplate<R> => (variables === undefined ? () => '' : compileTemplate(template, variables));
  const sticky: CompiledSticky<R> = {
    setting,
    lookup: setting.lookup.map(compile),
    create: setting.kind === 'learn' ? setting.create.map(compile) : [],
    domain: setting.kind === 'cookie' && setting.domain !== undefined ? compile(setting.domain) : undefined,
    sameSite: setting.kind === 'cookie' && setting.sameSite !== undefined ? compile(setting.sameSite) : undefined,
    sessions: setting.kind === 'learn' ? (runtime?.stickySessions ?? new StickySessions()) : undefined,
    zone: setting.kind === 'learn' ? { zone: setting.zone, group: setting.group, zoneSize: setting.zoneSize, timeoutMs: setting.timeoutMs } : undefined,
  };
  const balancer: Balancer<R> = {
    method: inner.method,
    begin: (request: R | undefined) => new StickyPicker(inner.begin(request), sets, sticky, request),
  };
  if (inner.observe !== undefined) balancer.observe = inner.observe.bind(inner);
  if (inner.describe !== undefined) balancer.describe = inner.describe.bind(inner);
  return balancer;
}

/** A `$name` argument of `route`, `create=` or `lookup=` as a template of that one variable. */
function variableOf(text: string): Template {
  return parseTemplate(`$${text}`);
}

/** ngx_http_upstream_sticky_cookie(). */
function parseCookie(args: readonly string[], fail: (message: string) => never, value: (text: string) => Template): StickyCookieSetting {
  const [, name = '', ...params] = args;
  const directive = (reason: string): never => fail(`"sticky" directive ${reason}`);
  if (name === '') directive('empty cookie name');
  let expiresSeconds: number | undefined;
  let domain: Template | undefined;
  let path: string | undefined;
  let sameSite: Template | undefined;
  let httpOnly = false;
  let secure = false;
  const once = (seen: boolean, what: string): void => {
    if (seen) directive(`parameter "${what}" is duplicate`);
  };
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = eq === -1 ? param : param.slice(0, eq + 1);
    const text = eq === -1 ? '' : param.slice(eq + 1);
    switch (key) {
      case 'domain=':
        once(domain !== undefined, 'domain');
        if (text === '') directive('no value for "domain"');
        domain = value(text);
        break;
      case 'path=':
        once(path !== undefined, 'path');
        if (text === '') directive('no value for "path"');
        path = text;
        break;
      case 'expires=': {
        once(expiresSeconds !== undefined, 'expires');
        const ms = text === 'max' ? EXPIRES_MAX * 1000 : parseTime(text, { seconds: true });
        if (ms === undefined) directive('invalid "expires" parameter value');
        expiresSeconds = Math.floor((ms as number) / 1000);
        break;
      }
      case 'httponly':
        once(httpOnly, 'httponly');
        httpOnly = true;
        break;
      case 'secure':
        once(secure, 'secure');
        secure = true;
        break;
      case 'samesite=': {
        once(sameSite !== undefined, 'samesite');
        const template = value(text);
        const constant = template.parts.every((part) => part.kind === 'text');
        if (constant && !SAMESITE.has(text.toLowerCase())) directive('invalid "samesite" parameter value');
        sameSite = template;
        break;
      }
      default:
        fail(`unknown parameter "${param}"`);
    }
  }
  return { kind: 'cookie', cookie: name, expiresSeconds, domain, path, sameSite, httpOnly, secure, lookup: [variableOf(`cookie_${name}`)] };
}

/** ngx_http_upstream_sticky_learn(). */
function parseLearn(params: readonly string[], fail: (message: string) => never): StickyLearnSetting {
  const directive = (reason: string): never => fail(`"sticky" directive ${reason}`);
  const lookup: Template[] = [];
  const create: Template[] = [];
  let zone: string | undefined;
  let zoneSize = 0;
  let timeoutMs: number | undefined;
  let header = false;
  for (const param of params) {
    if (param.startsWith('zone=')) {
      if (zoneSize !== 0) directive('duplicate zone');
      const colon = param.indexOf(':');
      if (colon === -1) directive('zone size is not specified');
      zone = param.slice(5, colon);
      if (zone === '') directive('zone name is not specified');
      const size = parseSize(param.slice(colon + 1));
      if (size === undefined) directive('invalid zone size');
      // "32k ~ 200 sessions, 1m ~ 8000 sessions": at least 8 pages.
      if ((size as number) < 8 * 4096) directive('zone is too small');
      zoneSize = size as number;
    } else if (param.startsWith('timeout=')) {
      if (timeoutMs !== undefined) directive('duplicate timeout');
      const ms = parseTime(param.slice(8));
      if (ms === undefined || ms === 0) directive('invalid timeout');
      timeoutMs = ms;
    } else if (param.startsWith('create=') || param.startsWith('lookup=')) {
      const which = param.slice(0, 6);
      if (param[7] !== '$') directive(`missing variable in the "${which}" parameter`);
      (which === 'create' ? create : lookup).push(variableOf(param.slice(8)));
    } else if (param === 'header') {
      header = true;
    } else {
      fail(`unknown parameter "${param}"`);
    }
  }
  if (lookup.length === 0) directive('"lookup" parameter is not specified');
  if (create.length === 0) directive('"create" parameter is not specified');
  if (zone === undefined) directive('"zone" parameter is not specified');
  return { kind: 'learn', lookup, create, zone: zone as string, zoneSize, timeoutMs: timeoutMs ?? 600_000, header, group: '' };
}

/** Parses `sticky cookie ...`, `sticky route ...` or `sticky learn ...` (ngx_http_upstream_sticky()). */
export function parseSticky(args: readonly string[], fail: (message: string) => never, value: (text: string) => Template = parseTemplate): StickySetting {
  const [kind = '', ...rest] = args;
  if (kind === 'cookie') return parseCookie(args, fail, value);
  if (kind === 'route') {
    const lookup = rest.map((arg) => {
      if (!arg.startsWith('$')) fail(`invalid variable name "${arg}"`);
      return variableOf(arg.slice(1));
    });
    return { kind: 'route', lookup };
  }
  if (kind === 'learn') return parseLearn(rest, fail);
  return fail(`unknown parameter "${kind}"`);
}

/** Every template a setting reads, for the check of unknown variables. */
export function stickyTemplates(setting: StickySetting): Template[] {
  if (setting.kind === 'cookie') return [...setting.lookup, ...(setting.domain === undefined ? [] : [setting.domain]), ...(setting.sameSite === undefined ? [] : [setting.sameSite])];
  if (setting.kind === 'route') return [...setting.lookup];
  return [...setting.lookup, ...setting.create];
}

/** The `sticky` directive. */
export const upstreamStickyModule: ConfModule = {
  name: 'ngx_http_upstream_sticky_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'sticky',
      contexts: ['upstream'],
      args: '2+',
      inherit: false,
      syntax: 'cookie name [expires=time] [domain=domain] [path=path] [samesite=strict|lax|none|$variable] [httponly] [secure]; | route $variable ...; | learn create=$variable lookup=$variable zone=name:size [timeout=time] [header];',
      summary: 'Binds a client to a server: by a cookie naming the server that answered (MD5 of its address, or its route=), by a route= the variables give, or by a session ID learned from a response; a drain server keeps its bound clients only.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => {
        const parsed = parseSticky(args, (message) => ctx.fail(message), (text) => parseValue(text, ctx));
        const setting: StickySetting = parsed.kind === 'learn' ? { ...parsed, group: ctx.enclosing?.args[0] ?? '' } : parsed;
        setBalancerWrapper(ctx, (method, sets, variables, runtime) => stickyBalancer(method, sets, setting, variables, runtime));
        return setting;
      },
    }),
  ],
};
