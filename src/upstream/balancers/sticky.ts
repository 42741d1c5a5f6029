/**
 * NGINX Plus's `sticky cookie name [expires=time] [domain=domain] [path=path] [samesite=...]
 * [httponly] [secure]` (ngx_http_upstream_sticky_module), over whatever balancing method the
 * group has. The first response names the peer that answered in a cookie: the MD5 of its address
 * (`127.0.0.1:8080`), in hex, as NGINX Plus writes it, so the cookie tells nothing about the
 * network. A later request with the cookie goes to that peer while it is usable, `drain`
 * included: a draining peer keeps its sticky clients and gets no new ones (the method never
 * chooses it). When the named peer is down, failed, unhealthy or full, the method chooses another
 * and the response carries a new cookie. A retry after a failure goes through the method too.
 */
import { createHash } from 'node:crypto';
import { parseTime } from '../../core/parse.js';
import { defineDirective, type ConfModule } from '../../conf/registry.js';
import { setBalancerWrapper } from '../upstream-module.js';
import type { Peer } from '../peer.js';
import { chosen, type Balanced, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancer.js';

/** `sticky cookie ...`. */
export interface StickySetting {
  readonly cookie: string;
  /** Seconds; `max` is NGINX Plus's 10 years; undefined for a session cookie (the default). */
  readonly expiresSeconds: number | undefined;
  readonly domain: string | undefined;
  readonly path: string | undefined;
  readonly sameSite: 'strict' | 'lax' | 'none' | undefined;
  readonly httpOnly: boolean;
  readonly secure: boolean;
}

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    sticky: StickySetting | undefined;
  }
}

/** `expires=max`: what nginx's `expires max` sends, 2037-12-31 23:55:55 GMT and 10 years of max-age. */
const EXPIRES_MAX = { date: 'Thu, 31 Dec 2037 23:55:55 GMT', maxAge: 315_360_000 };

/** The cookie value that names a peer: MD5 of its address in hex, as NGINX Plus's sticky cookie. */
export function stickyId(peer: Peer): string {
  return createHash('md5').update(peer.name).digest('hex');
}

/** The `Set-Cookie` value binding a client to `peer`. */
export function stickyCookie(setting: StickySetting, peer: Peer, now = Date.now()): string {
  let cookie = `${setting.cookie}=${stickyId(peer)}`;
  if (setting.expiresSeconds !== undefined) {
    const max = setting.expiresSeconds === EXPIRES_MAX.maxAge;
    const date = max ? EXPIRES_MAX.date : new Date(now + setting.expiresSeconds * 1000).toUTCString();
    cookie += `; expires=${date}; max-age=${setting.expiresSeconds}`;
  }
  if (setting.domain !== undefined) cookie += `; domain=${setting.domain}`;
  if (setting.path !== undefined) cookie += `; path=${setting.path}`;
  if (setting.sameSite !== undefined) cookie += `; samesite=${setting.sameSite}`;
  if (setting.secure) cookie += '; secure';
  if (setting.httpOnly) cookie += '; httponly';
  return cookie;
}

/** The value of cookie `name` in a `Cookie` header (HTTP/2's several joined with `, `). */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(/[;,]/)) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/** One request: its bound peer first, if usable, then the method. */
class StickyPicker implements PeerPicker {
  readonly #inner: PeerPicker;
  readonly #setting: StickySetting;
  /** The peer the request's cookie names, if it names one of the group. */
  readonly #bound: Peer | undefined;
  #first = true;

  constructor(inner: PeerPicker, setting: StickySetting, bound: Peer | undefined) {
    this.#inner = inner;
    this.#setting = setting;
    this.#bound = bound;
  }

  pick(tried: TriedSet, now: number): Peer | undefined {
    if (this.#first) {
      this.#first = false;
      const bound = this.#bound;
      // usable(), not available(): a draining peer keeps the clients bound to it.
      if (bound !== undefined && !tried.has(bound) && bound.usable(now)) return chosen(bound, now);
    }
    return this.#inner.pick(tried, now);
  }

  responseHeaders(peer: Peer): readonly string[] {
    return peer === this.#bound ? [] : ['Set-Cookie', stickyCookie(this.#setting, peer)];
  }
}

/** Wraps a group's method with `sticky cookie`. */
export function stickyBalancer<R extends Balanced>(inner: Balancer<R>, sets: PeerSets, setting: StickySetting): Balancer<R> {
  const byId = new Map([...sets.primaries, ...sets.backups].map((peer) => [stickyId(peer), peer]));
  const sticky: Balancer<R> = {
    method: inner.method,
    begin: (request: R | undefined) => {
      const id = cookieValue(request?.header?.('cookie'), setting.cookie);
      return new StickyPicker(inner.begin(request), setting, id === undefined ? undefined : byId.get(id));
    },
  };
  if (inner.observe !== undefined) sticky.observe = inner.observe.bind(inner);
  if (inner.describe !== undefined) sticky.describe = inner.describe.bind(inner);
  return sticky;
}

/** Parses `sticky cookie name [expires=time|max] [domain=d] [path=p] [samesite=...] [httponly] [secure]`. */
function parseSticky(args: readonly string[], fail: (message: string) => never): StickySetting {
  const [kind = '', name, ...params] = args;
  // NGINX Plus also has `sticky route` and `sticky learn`; hitless has the cookie method only.
  if (kind !== 'cookie') fail(`invalid parameter "${kind}"`);
  if (name === undefined || name === '' || name.includes('=')) fail(`invalid parameter "${name ?? ''}"`);
  let expiresSeconds: number | undefined;
  let domain: string | undefined;
  let path: string | undefined;
  let sameSite: StickySetting['sameSite'];
  let httpOnly = false;
  let secure = false;
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = eq === -1 ? param : param.slice(0, eq + 1);
    const value = eq === -1 ? '' : param.slice(eq + 1);
    const invalid = (): never => fail(`invalid parameter "${param}"`);
    switch (key) {
      case 'expires=':
        if (value === 'max') expiresSeconds = EXPIRES_MAX.maxAge;
        else expiresSeconds = Math.floor((parseTime(value, { seconds: true }) ?? invalid()) / 1000);
        break;
      case 'domain=':
        domain = value === '' ? invalid() : value;
        break;
      case 'path=':
        path = value === '' ? invalid() : value;
        break;
      case 'samesite=':
        if (value !== 'strict' && value !== 'lax' && value !== 'none') invalid();
        sameSite = value as StickySetting['sameSite'];
        break;
      case 'httponly':
        httpOnly = true;
        break;
      case 'secure':
        secure = true;
        break;
      default:
        invalid();
    }
  }
  return { cookie: name as string, expiresSeconds, domain, path, sameSite, httpOnly, secure };
}

/** The `sticky` directive (NGINX Plus's syntax, cookie method). */
export const upstreamStickyModule: ConfModule = {
  name: 'ngx_http_upstream_sticky_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'sticky',
      contexts: ['upstream'],
      args: '2+',
      inherit: false,
      syntax: 'cookie name [expires=time] [domain=domain] [path=path] [samesite=strict|lax|none] [httponly] [secure];',
      summary: 'Binds a client to the server that first answered it with a cookie (MD5 of the server\'s address); a drain server keeps its bound clients only.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => {
        const setting = parseSticky(args, (message) => ctx.fail(message));
        setBalancerWrapper(ctx, (method, sets) => stickyBalancer(method, sets, setting));
        return setting;
      },
    }),
  ],
};
