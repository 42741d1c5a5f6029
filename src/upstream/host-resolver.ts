/**
 * The `resolver` of a proxy_pass with variables, as nginx's ngx_resolver.c serves
 * ngx_http_upstream_init_request() and ngx_stream_proxy_handler(): the host is resolved at request time with the configured
 * name servers (core/dns-client.ts: A, and AAAA unless `ipv6=off`, a CNAME followed to its
 * target), answers are kept for their TTL or `valid=`, concurrent requests for one name share one
 * query, and a name that cannot be resolved is logged in nginx's words
 * (`x could not be resolved (3: Host not found)`).
 */
import { DnsClient, dnsErrorText } from '../core/dns-client.js';
import type { ResolverSetting } from '../conf/resolver-setting.js';
import type { Balanced } from './balancers/balancer.js';
import { implicitGroup, type UpstreamGroup } from './group.js';

/** A name that could not be resolved, with nginx's log line for it. */
export class ResolveFailure {
  readonly message: string;

  /** `code`: nginx's resolver state (the RCODE, 110 for a timeout). */
  constructor(name: string, code: number) {
    this.message = `${name} could not be resolved (${code}: ${dnsErrorText(code)})`;
  }
}

interface Answer<R extends Balanced> {
  readonly group: UpstreamGroup<R>;
  readonly expiresAt: number;
}

/** One `resolver` directive's name servers and cache: one per setting, per configuration generation. */
export class HostResolver<R extends Balanced = Balanced> {
  readonly #setting: ResolverSetting;
  readonly #dns: DnsClient;
  readonly #answers = new Map<string, Answer<R>>();
  readonly #pending = new Map<string, Promise<UpstreamGroup<R> | ResolveFailure>>();

  constructor(setting: ResolverSetting) {
    this.#setting = setting;
    this.#dns = new DnsClient(setting.servers);
  }

  /** The group for `name:port` if an answer is still valid; undefined when it must be asked for. */
  cached(name: string, port: number, now = Date.now()): UpstreamGroup<R> | undefined {
    const key = `${name.toLowerCase()}:${port}`;
    const answer = this.#answers.get(key);
    if (answer === undefined) return undefined;
    if (answer.expiresAt > now) return answer.group;
    this.#answers.delete(key);
    answer.group.close();
    return undefined;
  }

  /** Resolves `name` within `timeoutMs` (resolver_timeout) and makes the group of its addresses on `port`. */
  resolve(name: string, port: number, timeoutMs: number): Promise<UpstreamGroup<R> | ResolveFailure> {
    const key = `${name.toLowerCase()}:${port}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#query(name, port, key, timeoutMs).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #query(name: string, port: number, key: string, timeoutMs: number): Promise<UpstreamGroup<R> | ResolveFailure> {
    const answer = await this.#dns.resolveAddresses(name, { ipv4: this.#setting.ipv4, ipv6: this.#setting.ipv6, timeoutMs });
    if (answer.code !== 0) return new ResolveFailure(name, answer.code);
    const validSeconds = this.#setting.validMs === undefined ? answer.ttl : Math.floor(this.#setting.validMs / 1000);
    // A request's peers keep no failures for the next one: nginx makes them per request
    // (ngx_http_upstream_create_round_robin_peer()), so max_fails does not take one out here.
    const group = implicitGroup(name, port, answer.addresses, 0) as UpstreamGroup<R>;
    const previous = this.#answers.get(key);
    // nginx keeps an answer while `rn->valid >= ngx_time()`, in whole seconds: a TTL of 0 lasts
    // the rest of the second, which lets the request that asked use it.
    this.#answers.set(key, { group, expiresAt: (Math.floor(Date.now() / 1000) + validSeconds + 1) * 1000 });
    previous?.group.close();
    return group;
  }

/** The groups made so far, for the admin API and for closing. */
  groups(): UpstreamGroup<R>[] {
    return [...this.#answers.values()].map((answer) => answer.group);
  }

  /** Closes the idle upstream connections of every group and stops asking. */
  close(): void {
    this.#dns.close();
    for (const answer of this.#answers.values()) answer.group.close();
  }
}

/** A level's view of its resolver: the shared cache, and queries bounded by the level's resolver_timeout. */
export interface LevelResolver<R extends Balanced = Balanced> {
  cached(name: string, port: number): UpstreamGroup<R> | undefined;
  resolve(name: string, port: number): Promise<UpstreamGroup<R> | ResolveFailure>;
}

/** The resolvers of one configuration generation, one per `resolver` directive (inner levels share the outer one's). */
export class Resolvers<R extends Balanced = Balanced> {
  readonly #bySetting = new Map<ResolverSetting, HostResolver<R>>();

  /**
   * The resolver of a level: one cache for every level that inherits one directive, asked with
   * the level's own resolver_timeout (nginx's `ctx->timeout` is the location's).
   */
  for(setting: ResolverSetting, timeoutMs: number): LevelResolver<R> {
    let resolver = this.#bySetting.get(setting);
    if (resolver === undefined) {
      resolver = new HostResolver<R>(setting);
      this.#bySetting.set(setting, resolver);
    }
    const shared = resolver;
    return {
      cached: (name, port) => shared.cached(name, port),
      resolve: (name, port) => shared.resolve(name, port, timeoutMs),
    };
  }

  /** Every group a resolver made. */
  groups(): UpstreamGroup<R>[] {
    return [...this.#bySetting.values()].flatMap((resolver) => resolver.groups());
  }

  /** Closes every resolver and its groups. */
  close(): void {
    for (const resolver of this.#bySetting.values()) resolver.close();
  }
}
