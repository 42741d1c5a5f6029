/**
 * The `resolver` of a proxy_pass URL with variables, as nginx's ngx_resolver.c serves
 * ngx_http_upstream_init_request(): the host is resolved at request time with the configured
 * name servers (node:dns's Resolver: A, and AAAA unless `ipv6=off`), answers are kept for their
 * TTL or `valid=`, concurrent requests for one name share one query, and a name that cannot be
 * resolved is logged in nginx's words (`x could not be resolved (3: Host not found)`).
 */
import { Resolver } from 'node:dns/promises';
import type { ResolverSetting } from '../conf/resolver-setting.js';
import type { HttpRequest } from './request.js';
import { implicitGroup, type UpstreamGroup } from '../upstream/group.js';

/** nginx's `ngx_resolver_strerror()` codes, by the error codes of node:dns (c-ares). */
const NGINX_RESOLVE_ERRORS: Readonly<Record<string, readonly [number, string]>> = {
  EFORMERR: [1, 'Format error'],
  ESERVFAIL: [2, 'Server failure'],
  ENOTFOUND: [3, 'Host not found'],
  ENODATA: [3, 'Host not found'],
  ENOTIMP: [4, 'Unimplemented'],
  EREFUSED: [5, 'Operation refused'],
  ETIMEOUT: [110, 'Operation timed out'],
};

/** A name that could not be resolved, with nginx's log line for it. */
export class ResolveFailure {
  readonly message: string;

  constructor(name: string, code: string | undefined) {
    const [number, text] = NGINX_RESOLVE_ERRORS[code ?? ''] ?? [2, 'Server failure'];
    this.message = `${name} could not be resolved (${number}: ${text})`;
  }
}

interface Answer {
  readonly group: UpstreamGroup<HttpRequest>;
  readonly expiresAt: number;
}

/** One `resolver` directive's name servers and cache: one per setting, per configuration generation. */
export class HostResolver {
  readonly #setting: ResolverSetting;
  readonly #timeoutMs: number;
  readonly #dns: Resolver;
  readonly #answers = new Map<string, Answer>();
  readonly #pending = new Map<string, Promise<UpstreamGroup<HttpRequest> | ResolveFailure>>();

  /** `timeoutMs`: resolver_timeout. */
  constructor(setting: ResolverSetting, timeoutMs: number) {
    this.#setting = setting;
    this.#timeoutMs = timeoutMs;
    // One try per query: resolver_timeout bounds the whole resolution, as in nginx.
    this.#dns = new Resolver({ timeout: Math.max(1, timeoutMs), tries: 1 });
    this.#dns.setServers(setting.servers.map((server) => (server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`)));
  }

  /** The group for `name:port` if an answer is still valid; undefined when it must be asked for. */
  cached(name: string, port: number, now = Date.now()): UpstreamGroup<HttpRequest> | undefined {
    const key = `${name.toLowerCase()}:${port}`;
    const answer = this.#answers.get(key);
    if (answer === undefined) return undefined;
    if (answer.expiresAt > now) return answer.group;
    this.#answers.delete(key);
    answer.group.close();
    return undefined;
  }

  /** Resolves `name` and makes the group of its addresses on `port`. */
  resolve(name: string, port: number): Promise<UpstreamGroup<HttpRequest> | ResolveFailure> {
    const key = `${name.toLowerCase()}:${port}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#query(name, port, key).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #query(name: string, port: number, key: string): Promise<UpstreamGroup<HttpRequest> | ResolveFailure> {
    const dns = this.#dns;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
    });
    const lookups = [
      this.#setting.ipv4 ? dns.resolve4(name, { ttl: true }) : Promise.resolve([]),
      this.#setting.ipv6 ? dns.resolve6(name, { ttl: true }) : Promise.resolve([]),
    ].map((lookup) => lookup.then((records) => ({ records, code: undefined }), (err: NodeJS.ErrnoException) => ({ records: [], code: err.code })));
    const outcome = await Promise.race([Promise.all(lookups), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      dns.cancel();
      return new ResolveFailure(name, 'ETIMEOUT');
    }
    const records = outcome.flatMap((result) => result.records);
    if (records.length === 0) {
      // nginx reports the A query's error first; a name with no address at all is "Host not found".
      const code = outcome.find((result) => result.code !== undefined && result.code !== 'ENODATA')?.code ?? 'ENOTFOUND';
      return new ResolveFailure(name, code);
    }
    const ttl = Math.min(...records.map((record) => record.ttl));
    const validMs = this.#setting.validMs ?? ttl * 1000;
    const group = implicitGroup(name, port, records.map((record) => record.address)) as UpstreamGroup<HttpRequest>;
    const previous = this.#answers.get(key);
    this.#answers.set(key, { group, expiresAt: Date.now() + validMs });
    previous?.group.close();
    return group;
  }

  /** The groups made so far, for the admin API and for closing. */
  groups(): UpstreamGroup<HttpRequest>[] {
    return [...this.#answers.values()].map((answer) => answer.group);
  }

  /** Closes the idle upstream connections of every group and stops asking. */
  close(): void {
    this.#dns.cancel();
    for (const answer of this.#answers.values()) answer.group.close();
  }
}

/** The resolvers of one configuration generation, one per `resolver` directive (inner levels share the outer one's). */
export class Resolvers {
  readonly #bySetting = new Map<ResolverSetting, HostResolver>();

  /** The resolver of a level; the same object for every level that inherits one directive. */
  for(setting: ResolverSetting, timeoutMs: number): HostResolver {
    let resolver = this.#bySetting.get(setting);
    if (resolver === undefined) {
      resolver = new HostResolver(setting, timeoutMs);
      this.#bySetting.set(setting, resolver);
    }
    return resolver;
  }

  /** Every group a resolver made. */
  groups(): UpstreamGroup<HttpRequest>[] {
    return [...this.#bySetting.values()].flatMap((resolver) => resolver.groups());
  }

  /** Closes every resolver and its groups. */
  close(): void {
    for (const resolver of this.#bySetting.values()) resolver.close();
  }
}
