/**
 * The structure of nginx's `ngx_http_upstream_module` and `ngx_stream_upstream_module`: named
 * groups of peers and the `server` lines inside them.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';
import { parseNumber, parseTime } from '../core/parse.js';
import type { VariableTable } from '../core/variables.js';
import { parseResolver, type ResolverSetting } from '../conf/resolver-setting.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { Balanced, Balancer, PeerSets } from './balancers/balancer.js';
import { roundRobinBalancer } from './balancers/round-robin.js';
import type { UpstreamRuntime } from './upstream-runtime.js';

/** One `server` line of an upstream group, with nginx's defaults applied. */
export interface UpstreamServer {
  /** The address as written: `host:port`, `[::1]:port`, `unix:/path` or a name to resolve. */
  readonly address: string;
  readonly weight: number;
  readonly maxFails: number;
  /** In milliseconds. */
  readonly failTimeout: number;
  /** 0 means no limit. */
  readonly maxConns: number;
  readonly backup: boolean;
  readonly down: boolean;
  /** NGINX Plus's `drain`: requests bound to the server (sticky) only. */
  readonly drain: boolean;
  /** The `route=` parameter: the server ID for `sticky` (nginx's `us->sid`); undefined when not given. */
  readonly route: string | undefined;
  /**
   * `resolve`: the name is resolved again at run time by the group's `resolver` (nginx 1.27.3);
   * false when the address is an IP address, which nginx then treats as a plain server.
   */
  readonly resolve: boolean;
  /** `service=`: the SRV service whose records give the peers (with `resolve`); undefined without. */
  readonly service: string | undefined;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    upstream: undefined;
    server: readonly UpstreamServer[];
  }
}

/**
 * How a balancing method is built for a group, left on the `upstream` block by the method's own
 * directive (nginx's `uscf->peer.init_upstream`, set by ngx_http_upstream_least_conn() and its
 * kin): a new method is one file with its directive, and nothing here names it.
 */
export interface BalancerFactory {
  /** The method's name as written (`least_conn`). */
  readonly method: string;
  /**
   * Whether `server ... backup` may follow (nginx's NGX_HTTP_UPSTREAM_BACKUP in `uscf->flags`):
   * false for ip_hash, hash, random and ewma.
   */
  readonly backup: boolean;
  /** Builds the method over a group's peers; `variables` is the variable table of `http` or `stream` (hash keys). */
  build<R extends Balanced>(sets: PeerSets, variables: VariableTable<R> | undefined): Balancer<R>;
}

/**
 * A wrapper over whatever method a group has (`sticky`); `variables` as for
 * {@link BalancerFactory.build}; `runtime` the server's upstream state (sticky learn's sessions).
 */
export type BalancerWrapper = <R extends Balanced>(method: Balancer<R>, sets: PeerSets, variables: VariableTable<R> | undefined, runtime: UpstreamRuntime | undefined) => Balancer<R>;

/**
 * What an `upstream` block knows while it is read: the balancing method set so far, which
 * decides whether a `server` line that follows may say `backup`, and a wrapper such as `sticky`.
 */
export class UpstreamBlockState {
  /** Undefined for round robin, the default. */
  balancer: BalancerFactory | undefined;
  wrapper: BalancerWrapper | undefined;
}

function blockState(value: unknown): UpstreamBlockState | undefined {
  return value instanceof UpstreamBlockState ? value : undefined;
}

/**
 * Sets a group's balancing method from its directive's handler. nginx warns "load balancing
 * method redefined" when one was set already and keeps the last; hitless keeps the last too.
 */
export function setBalancer(ctx: DirectiveContext, factory: BalancerFactory): void {
  const state = blockState(ctx.enclosing?.value);
  if (state !== undefined) state.balancer = factory;
}

/** Sets a wrapper over the group's method (`sticky`), from its directive's handler. */
export function setBalancerWrapper(ctx: DirectiveContext, wrapper: BalancerWrapper): void {
  const state = blockState(ctx.enclosing?.value);
  if (state !== undefined) state.wrapper = wrapper;
}

/** Builds the balancer an `upstream` block asks for (round robin when none), wrapped by `sticky` if set. */
export function buildBalancer<R extends Balanced>(block: ConfBlockView, variables: VariableTable<R> | undefined, runtime?: UpstreamRuntime): (sets: PeerSets) => Balancer<R> {
  const state = blockState(block.value);
  const factory = state?.balancer;
  const wrapper = state?.wrapper;
  return (sets) => {
    const method: Balancer<R> = factory === undefined ? roundRobinBalancer(sets) : factory.build(sets, variables);
    return wrapper === undefined ? method : wrapper(method, sets, variables, runtime);
  };
}

/** nginx's NGX_HTTP_UPSTREAM_SID_LEN: a `route=` is at most 32 bytes, the length of an MD5 in hex. */
const MAX_ROUTE_LENGTH = 32;

/** Parses `server address [weight=n] [max_fails=n] [fail_timeout=t] [max_conns=n] [backup] [down] [drain] [route=id] [resolve] [service=name]`. */
export function parseUpstreamServer(args: readonly string[], ctx: DirectiveContext, previous: readonly UpstreamServer[] | undefined): readonly UpstreamServer[] {
  const [address = '', ...params] = args;
  let weight = 1;
  let maxFails = 1;
  let failTimeout = 10_000;
  let maxConns = 0;
  let backup = false;
  let down = false;
  let drain = false;
  let route: string | undefined;
  // `drain` and `route=` belong to the http sticky module; a stream group has neither.
  const http = ctx.context === 'upstream';
  let resolve = false;
  let service: string | undefined;
  for (const param of params) {
    const [key, value] = param.includes('=') ? [param.slice(0, param.indexOf('=') + 1), param.slice(param.indexOf('=') + 1)] : [param, ''];
    const invalid = (): never => ctx.fail(`invalid parameter "${param}"`);
    switch (key) {
      case 'weight=':
        weight = parseNumber(value) ?? invalid();
        if (weight === 0) invalid();
        break;
      case 'max_fails=':
        maxFails = parseNumber(value) ?? invalid();
        break;
      case 'fail_timeout=':
        failTimeout = parseTime(value, { seconds: true }) ?? invalid();
        break;
      case 'max_conns=':
        maxConns = parseNumber(value) ?? invalid();
        break;
      case 'backup':
        if (blockState(ctx.enclosing?.value)?.balancer?.backup === false) {
          ctx.fail(`balancing method does not support parameter "${param}"`);
        }
        backup = true;
        break;
      case 'down':
        down = true;
        break;
      case 'drain':
        if (!http) invalid();
        drain = true;
        break;
      case 'route=':
        if (!http) invalid();
        // ngx_http_upstream_server(): the ID is taken as written, up to NGX_HTTP_UPSTREAM_SID_LEN.
        if (value === '') ctx.fail('route is empty');
        if (Buffer.byteLength(value) > MAX_ROUTE_LENGTH) ctx.fail(`route is longer than ${MAX_ROUTE_LENGTH}`);
        route = value;
        break;
      case 'resolve':
        resolve = true;
        break;
      case 'service=':
        if (value === '') ctx.fail('service is empty');
        service = value;
        break;
      default:
        invalid();
    }
  }
  // ngx_http_upstream_server(): what `resolve` and `service=` need of the address.
  if (service !== undefined && !resolve) ctx.fail(`service upstream "${address}" requires "resolve" parameter`);
  const literal = isLiteralAddress(address);
  if (service !== undefined && hasPort(address)) ctx.fail(`service upstream "${address}" may not have port`);
  if (service !== undefined && literal) ctx.fail(`service upstream "${address}" requires domain name`);
  const server = { address, weight, maxFails, failTimeout, maxConns, backup, down, drain, route, resolve: resolve && !literal, service, file: ctx.location.file, line: ctx.location.line };
  return [...(previous ?? []), server];
}

/** An IP address or a unix socket: nothing to resolve. */
function isLiteralAddress(address: string): boolean {
  if (address.toLowerCase().startsWith('unix:') || address.startsWith('[')) return true;
  const colon = address.lastIndexOf(':');
  return isIP(colon === -1 ? address : address.slice(0, colon)) !== 0;
}

function hasPort(address: string): boolean {
  if (address.toLowerCase().startsWith('unix:')) return false;
  if (address.startsWith('[')) return address.slice(address.indexOf(']') + 1).startsWith(':');
  return address.includes(':');
}

const serverSummary = 'A peer of the group: an address with optional weight=, max_fails=, fail_timeout=, max_conns=, backup, down, drain (sticky clients only), route= (the server ID sticky binds to), resolve (the name resolved again at run time; needs zone and a resolver) and service= (SRV records).';

/** The group's `resolver`, else the one of the `http` or `stream` block around it (ngx_http_upstream_init_round_robin()). */
export function upstreamResolver(group: ConfBlockView): ResolverSetting | undefined {
  return group.isSet('resolver') ? group.get('resolver') : group.parent?.get('resolver');
}

/** The group's `resolver_timeout`, else the enclosing block's (30s by default). */
export function upstreamResolverTimeout(group: ConfBlockView): number {
  return group.isSet('resolver_timeout') ? group.get('resolver_timeout') : (group.parent?.get('resolver_timeout') ?? 30_000);
}

/** nginx refuses an empty group (`ngx_http_upstream_init_round_robin`) and a name used twice. */
function checkGroups(parent: ConfBlockView | undefined): void {
  const seen = new Set<string>();
  for (const group of parent?.blocks.filter((block) => block.name === 'upstream') ?? []) {
    const name = group.args[0] ?? '';
    if (seen.has(name)) throw new ConfigError(`duplicate upstream "${name}"`, group);
    seen.add(name);
    if (group.get('server').length === 0) throw new ConfigError('no servers are inside upstream', group);
    // ngx_http_upstream_init_round_robin(): a name resolved at run time needs the zone and a resolver.
    const resolved = group.get('server').find((server) => server.resolve);
    if (resolved === undefined) continue;
    const where = `upstream "${name}" in ${group.file}:${group.line}`;
    if (!group.isSet('zone')) throw new ConfigError(`resolving names at run time requires ${where} to be in shared memory`, undefined);
    if (upstreamResolver(group) === undefined) throw new ConfigError(`no resolver defined to resolve names at run time in ${where}`, undefined);
  }
}

/** `upstream` groups in `http` and `stream`, and their `server` lines. */
export const upstreamModule: ConfModule = {
  name: 'ngx_http_upstream_module',
  directives: [
    defineDirective({
      kind: 'block',
      name: 'upstream',
      contexts: ['http', 'stream'],
      args: [1],
      block: (_args, ctx) => (ctx.context === 'stream' ? 'stream_upstream' : 'upstream'),
      parse: (): UpstreamBlockState => new UpstreamBlockState(),
      syntax: 'name { ... }',
      summary: 'A named group of servers that proxy_pass can balance across.',
    }),
    defineDirective({
      kind: 'value',
      name: 'server',
      contexts: ['upstream', 'stream_upstream'],
      args: '1+',
      repeatable: true,
      inherit: false,
      syntax: 'address [parameters];',
      summary: serverSummary,
      default: () => [],
      parse: parseUpstreamServer,
    }),
    defineDirective({
      kind: 'value',
      name: 'resolver',
      contexts: ['upstream', 'stream_upstream'],
      args: '1+',
      inherit: false,
      syntax: 'address ... [valid=time] [ipv4=on|off] [ipv6=on|off];',
      summary: 'The DNS servers that resolve the group\'s `server ... resolve` names at run time; the http or stream block\'s resolver when not set.',
      parse: parseResolver,
    }),
    defineDirective({
      kind: 'value',
      name: 'resolver_timeout',
      contexts: ['upstream', 'stream_upstream'],
      args: [1],
      inherit: false,
      syntax: 'time;',
      summary: 'How long one re-resolution of the group\'s names may take; the http or stream block\'s resolver_timeout when not set.',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail(`"${ctx.node.name}" directive invalid value`),
    }),
  ],
  check(main) {
    checkGroups(main.blocks.find((block) => block.name === 'http'));
    checkGroups(main.blocks.find((block) => block.name === 'stream'));
  },
};
