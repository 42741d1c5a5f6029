/**
 * Upstream groups at run time, one set per configuration generation in each worker: the peers of
 * every `upstream` block (and the implicit group of a `proxy_pass` to a plain host), each group's
 * balancer and its pool of idle connections.
 */
import { isIP } from 'node:net';
import type { ConfBlockView } from '../conf/registry.js';
import type { VariableTable } from '../core/variables.js';
import { resolveHostSync } from '../core/hosts.js';
import { peerSets, type Balanced, type Balancer, type PeerPicker, type PeerSets, type TriedSet } from './balancers/balancer.js';
import { recordOutcome, roundRobinBalancer } from './balancers/round-robin.js';
import { ConnectionPool, type PoolLimits } from './connection-pool.js';
import { H2SessionPool } from './h2-sessions.js';
import type { UpstreamFailure } from './upstream-failure.js';
import { streamHealthKey, type PeerHealthState } from './health/health-table.js';
import { Peer, peerName, type PeerAddress } from './peer.js';
import type { UpstreamRuntime } from './upstream-runtime.js';
import { buildBalancer, upstreamResolver, upstreamResolverTimeout, type UpstreamServer } from './upstream-module.js';
import { hostAndPort, ResolvedAnswers, ServerResolution, type ResolvedAddress } from './resolve.js';
import { DnsClient } from '../core/dns-client.js';
import type { ErrorLog } from '../core/log.js';

/** One peer's state, for the admin API and tests. */
export interface PeerState {
  readonly group: string;
  readonly peer: string;
  readonly server: string;
  readonly backup: boolean;
  /**
   * `down` (the `down` parameter), `unhealthy` (the active check has it out, `checking` before
   * a `mandatory` check passed once), `unavailable` (max_fails reached within fail_timeout),
   * `full` (max_conns reached), `draining` (the `drain` parameter: sticky clients only), `up`
   * otherwise.
   */
  readonly state: PeerStateName;
  /** The active check's view, if a `health_check` covers the group. */
  readonly health: PeerHealthState | undefined;
  readonly weight: number;
  readonly conns: number;
  /** The other workers' active connections as this worker last heard (a `zone` group of least_conn or random two). */
  readonly otherConns?: number;
  readonly fails: number;
  readonly maxFails: number;
  readonly maxConns: number;
  /** The group's balancing method (`round_robin`, `least_conn`, `ewma`...). */
  readonly method?: string;
  /** True for the group of a `proxy_pass` to a host without an `upstream` block. */
  readonly implicit?: boolean;
  /** True when the group has `zone`. */
  readonly zone?: boolean;
  readonly drain?: boolean;
  /** Tries sent to the peer by this worker. */
  readonly requests?: number;
  /** Failures counted against the peer by this worker, ever. */
  readonly failures?: number;
  /** How many times max_fails took the peer out in this worker. */
  readonly unavail?: number;
  /** The method's own view of the peer (`ewma`: `latencyMs`, `cost`), if it has one. */
  readonly balancer?: Readonly<Record<string, number>>;
}

/** The states a peer can be in, worst first as the admin API ranks them. */
export type PeerStateName = 'down' | 'unhealthy' | 'checking' | 'unavailable' | 'full' | 'draining' | 'up';

/** Counts the tries a request's walk hands out and passes on what the method adds to the response. */
class CountingPicker implements PeerPicker {
  readonly #picker: PeerPicker;

  constructor(picker: PeerPicker) {
    this.#picker = picker;
    const responseHeaders = picker.responseHeaders?.bind(picker);
    if (responseHeaders !== undefined) this.responseHeaders = responseHeaders;
    const answered = picker.answered?.bind(picker);
    if (answered !== undefined) this.answered = answered;
  }

  responseHeaders?: (peer: Peer) => readonly string[];
  answered?: (peer: Peer) => void;

  pick(tried: TriedSet, now: number): Peer | undefined {
    const peer = this.#picker.pick(tried, now);
    if (peer !== undefined) peer.requests++;
    return peer;
  }
}

/**
 * A group of peers with its balancer and connection pool. `R` is what its balancer places: an
 * HTTP request in `http`, a session in `stream`.
 */
export class UpstreamGroup<R extends Balanced = Balanced> {
  readonly name: string;
  readonly pool: ConnectionPool;
  /** HTTP/2 sessions to the peers (grpc_pass), idle ones closed after the group's keepalive_timeout. */
  readonly h2: H2SessionPool<UpstreamFailure>;
  /** True for the group nginx makes for `proxy_pass http://host:port` without an `upstream` block. */
  readonly implicit: boolean;
  /** True when the group has `zone`: its failure counts are shared by every worker. */
  readonly shared: boolean;
  readonly #runtime: UpstreamRuntime | undefined;
  readonly #buildBalancer: (sets: PeerSets) => Balancer<R>;
  #sets: PeerSets;
  #balancer: Balancer<R>;
  /** What stops the re-resolution of the group's `server ... resolve` names, if it has any. */
  #stopResolving: (() => void) | undefined;

  /**
   * `balancer` builds the group's method from its peers; round robin by default. `runtime` is the
   * server's upstream state (health table, shared peers); without it nothing is shared.
   */
  constructor(name: string, peers: readonly Peer[], limits: PoolLimits, implicit: boolean, balancer: (sets: PeerSets) => Balancer<R> = roundRobinBalancer, shared = false, runtime?: UpstreamRuntime) {
    this.#runtime = runtime;
    this.name = name;
    this.#buildBalancer = balancer;
    this.#sets = peerSets(peers);
    this.pool = new ConnectionPool(limits);
    this.h2 = new H2SessionPool(limits.idleTimeoutMs, limits.maxRequests, limits.maxAgeMs);
    this.implicit = implicit;
    this.#balancer = balancer(this.#sets);
    this.shared = shared;
    if (shared) for (const peer of peers) runtime?.sharedPeers.add(peer);
    this.#watchOut(peers);
  }

  /** Peers max_fails takes out are listed in the runtime for the downtime metric (process/worker-metrics.ts). */
  #watchOut(peers: readonly Peer[]): void {
    const out = this.#runtime?.outPeers;
    if (out === undefined) return;
    const note = (peer: Peer): void => {
      out.set(peer, this.name);
    };
    for (const peer of peers) peer.onOut = note;
  }

  /** The peers as the balancer sees them; replaced as a whole when a `resolve` name changes. */
  get sets(): PeerSets {
    return this.#sets;
  }

  get primaries(): readonly Peer[] {
    return this.#sets.primaries;
  }

  get backups(): readonly Peer[] {
    return this.#sets.backups;
  }

  get balancer(): Balancer<R> {
    return this.#balancer;
  }

  /**
   * Takes a new list of peers, as ngx_http_upstream_zone_resolve_handler() edits the zone's: a
   * peer kept from the old list keeps its counters; the method is built again over the new sets
   * (a request already walking the old ones finishes on them).
   */
  replacePeers(peers: readonly Peer[]): void {
    const old = new Set([...this.#sets.primaries, ...this.#sets.backups]);
    this.#sets = peerSets(peers);
    this.#balancer = this.#buildBalancer(this.#sets);
    this.#watchOut(peers);
    if (!this.shared) return;
    for (const peer of peers) {
      if (old.delete(peer)) continue;
      this.#runtime?.sharedPeers.add(peer);
    }
    for (const peer of old) this.#runtime?.sharedPeers.remove(peer);
  }

  /** Sets what {@link close} calls to stop resolving the group's names again. */
  onClose(stop: () => void): void {
    this.#stopResolving = stop;
  }

  /**
   * How many peers one request may try at most: every peer not marked `down`, backups included
   * (nginx's `ngx_http_upstream_tries()`).
   */
  get size(): number {
    return [...this.primaries, ...this.backups].filter((peer) => !peer.down).length;
  }

  /**
   * Starts one request's walk over the peers; every peer it hands out counts one request. There is
   * no one-shot pick: a caller without the request would hash nothing (ip_hash, hash, sticky), so
   * the upstream cycle (request-cycle.ts) always passes it.
   */
  begin(request?: R): PeerPicker {
    return new CountingPicker(this.balancer.begin(request));
  }

  /**
   * The worker's active connections to `peer` changed (an attempt began or ended): with `zone` and
   * a method that compares them, the other workers are told (upstream/shared-peers.ts).
   */
  connsChanged(peer: Peer): void {
    if (this.shared && this.#balancer.readsConns === true) this.#runtime?.sharedPeers.connsChanged(peer);
  }

  /**
   * Records a request's outcome on a peer; true when the peer has now failed max_fails times.
   * A single peer's failures are not counted: nginx never takes the only server out.
   */
  record(peer: Peer, failed: boolean, now = Date.now()): boolean {
    if (this.sets.single) return false;
    if (failed) peer.failures++;
    if (this.shared) this.#runtime?.sharedPeers.report(peer, failed, now);
    const out = recordOutcome(peer, failed, now);
    if (out && peer.fails === peer.maxFails) peer.unavail++;
    peer.trackOut(now);
    return out;
  }

  /** Tells the balancer how long a peer took to answer (ms), for latency-aware methods (`ewma`). */
  observe(peer: Peer, latencyMs: number, now = Date.now()): void {
    this.balancer.observe?.(peer, latencyMs, now);
  }

  /** Every peer's state and counters, primaries first. */
  peerStates(now = Date.now()): PeerState[] {
    return [...this.primaries, ...this.backups].map((peer) => {
      const health = this.#runtime?.health.stateOf(peer.group, peer.name);
      const described = this.balancer.describe?.(peer, now);
      return {
        group: this.name,
        peer: peer.name,
        server: peer.server,
        backup: peer.backup,
        state: peerStateOf(peer, health, now),
        health,
        weight: peer.weight,
        conns: peer.conns,
        ...(this.shared && this.#balancer.readsConns === true ? { otherConns: peer.otherConns } : {}),
        fails: peer.fails,
        maxFails: peer.maxFails,
        maxConns: peer.maxConns,
        method: this.balancer.method,
        implicit: this.implicit,
        zone: this.shared,
        drain: peer.drain,
        requests: peer.requests,
        failures: peer.failures,
        unavail: peer.unavail,
        ...(described === undefined ? {} : { balancer: described }),
      };
    });
  }

  /** Closes the idle connections (the generation is gone). */
  close(): void {
    this.#stopResolving?.();
    this.pool.close();
    this.h2.close();
    if (this.shared) for (const peer of [...this.primaries, ...this.backups]) this.#runtime?.sharedPeers.remove(peer);
    // The next generation's peers start with no failures, as nginx's do after a reload: this one's windows end.
    const now = Date.now();
    for (const peer of [...this.primaries, ...this.backups]) if (peer.outUntil > now) peer.outUntil = now;
  }
}

/** A peer's state as one worker sees it, worst first. */
function peerStateOf(peer: Peer, health: PeerHealthState | undefined, now: number): PeerStateName {
  if (peer.down) return 'down';
  if (health === 'unhealthy' || health === 'checking') return health;
  if (peer.failedRecently(now)) return 'unavailable';
  if (peer.full) return 'full';
  return peer.drain ? 'draining' : 'up';
}

/** Resolves one `server` address (`host[:port]`, `[v6][:port]`, `unix:/path`) to the addresses it names. */
export function resolveServerAddress(address: string, defaultPort = 80): PeerAddress[] {
  if (address.toLowerCase().startsWith('unix:')) return [{ kind: 'unix', path: address.slice(5) }];
  let host = address;
  let port = defaultPort;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    host = address.slice(1, close);
    const rest = address.slice(close + 1);
    if (rest.startsWith(':')) port = Number(rest.slice(1));
  } else if (address.includes(':')) {
    host = address.slice(0, address.lastIndexOf(':'));
    port = Number(address.slice(address.lastIndexOf(':') + 1));
  }
  const hosts = isIP(host) !== 0 ? [host] : resolveHostSync(host);
  return hosts.map((ip) => ({ kind: 'tcp', host: ip, port }));
}

function peerOf(server: UpstreamServer, address: PeerAddress, group: string, runtime: UpstreamRuntime | undefined, resolved?: ResolvedAddress): Peer {
  return new Peer({
    name: peerName(address),
    address,
    server: resolved?.server ?? server.address,
    weight: resolved?.weight ?? server.weight,
    maxFails: server.maxFails,
    failTimeoutMs: server.failTimeout,
    maxConns: server.maxConns,
    backup: resolved?.backup ?? server.backup,
    down: server.down,
    drain: server.drain,
    ...(server.route === undefined ? {} : { route: server.route }),
    group,
    ...(runtime === undefined ? {} : { health: runtime.health }),
  });
}

/**
 * Starts resolving a group's `server ... resolve` lines, if it has any: each line's peers take
 * its place in the group's list whenever an answer changes them.
 */
function resolveAtRunTime<R extends Balanced>(group: UpstreamGroup<R>, block: ConfBlockView, fixed: readonly (readonly Peer[])[], healthKey: string, runtime: UpstreamRuntime | undefined, log: (() => ErrorLog | undefined) | undefined): void {
  const servers = block.get('server');
  const setting = upstreamResolver(block);
  if (setting === undefined || !servers.some((server) => server.resolve)) return;
  const dns = new DnsClient(setting.servers);
  const lines: (ServerResolution | undefined)[] = [];
  const update = (): void => group.replacePeers(servers.flatMap((_server, i) => lines[i]?.peers ?? fixed[i] ?? []));
  const defaultPort = block.context === 'stream_upstream' ? 0 : 80;
  const memory = runtime?.resolved ?? new ResolvedAnswers();
  servers.forEach((server, i) => {
    if (!server.resolve) return;
    lines[i] = new ServerResolution(server, {
      dns,
      setting,
      timeoutMs: upstreamResolverTimeout(block),
      memory,
      key: `${healthKey}\0${hostAndPort(server.address, defaultPort)[0].toLowerCase()}\0${server.service ?? ''}`,
      makePeer: (address) => peerOf(server, { kind: 'tcp', host: address.host, port: address.port }, healthKey, runtime, address),
      onChange: update,
      log,
    }, defaultPort);
  });
  group.onClose(() => {
    for (const line of lines) line?.stop();
    dns.close();
  });
  for (const line of lines) line?.start();
}

function peersOf(server: UpstreamServer, group: string, runtime: UpstreamRuntime | undefined): Peer[] {
  // A name resolved at run time has no peers until its first answer (ngx_http_upstream_init_round_robin()).
  if (server.resolve) return [];
  return resolveServerAddress(server.address).map((address) => peerOf(server, address, group, runtime));
}

/**
 * Builds every `upstream` group of an `http` or a `stream` block; `runtime`: the server's upstream
 * state; `log`: where the resolver's failures go.
 */
export function buildUpstreamGroups<R extends Balanced>(http: ConfBlockView, variables?: VariableTable<R>, runtime?: UpstreamRuntime, log?: () => ErrorLog | undefined): Map<string, UpstreamGroup<R>> {
  const groups = new Map<string, UpstreamGroup<R>>();
  for (const block of http.blocks) {
    if (block.name !== 'upstream') continue;
    const name = block.args[0] ?? '';
    // Peers report under their health table key: a stream group's is apart from an http group's.
    const healthKey = block.context === 'stream_upstream' ? streamHealthKey(name) : name;
    const lines = block.get('server').map((server) => peersOf(server, healthKey, runtime));
    const peers = lines.flat();
    // A stream group keeps no idle connections: a session's connection is its own.
    const limits = block.context === 'stream_upstream'
      ? { maxIdle: 0, maxRequests: 0, maxAgeMs: 0, idleTimeoutMs: 0 }
      : {
        maxIdle: block.get('keepalive'),
        maxRequests: block.get('keepalive_requests'),
        maxAgeMs: block.get('keepalive_time'),
        idleTimeoutMs: block.get('keepalive_timeout').timeoutMs,
      };
    const group = new UpstreamGroup(
      name,
      peers,
      limits,
      false,
      buildBalancer(block, variables, runtime),
      block.isSet('zone'),
      runtime,
    );
    resolveAtRunTime(group, block, lines, healthKey, runtime, log);
    groups.set(name, group);
  }
  return groups;
}

/**
 * The group nginx creates for `proxy_pass http://host:port`: every address of the host, no
 * keepalive cache. `addresses`: the host's addresses when a `resolver` found them at request time;
 * `maxFails`: 0 for those, whose failures nginx forgets after the request.
 */
export function implicitGroup(host: string, port: number, addresses?: readonly string[], maxFails = 1): UpstreamGroup {
  const address = host.startsWith('unix:') ? host : host.startsWith('[') ? `${host}:${port}` : isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const found: PeerAddress[] = addresses?.map((ip) => ({ kind: 'tcp', host: ip, port })) ?? resolveServerAddress(address, port);
  const peers = found.map(
    (resolved) => new Peer({ name: peerName(resolved), address: resolved, server: address, weight: 1, maxFails, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false }),
  );
  return new UpstreamGroup(host.startsWith('unix:') ? host : `${host}:${port}`, peers, { maxIdle: 0, maxRequests: 0, maxAgeMs: 0, idleTimeoutMs: 0 }, true);
}
