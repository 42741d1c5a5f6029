/**
 * Upstream groups at run time, one set per configuration generation in each worker: the peers of
 * every `upstream` block (and the implicit group of a `proxy_pass` to a plain host), each group's
 * balancer and its pool of idle connections.
 */
import { isIP } from 'node:net';
import type { ConfBlockView } from '../conf/registry.js';
import { resolveHostSync } from '../http/listen.js';
import { pickRoundRobin, recordOutcome } from './balancers/round-robin.js';
import { ConnectionPool, type PoolLimits } from './connection-pool.js';
import { H2SessionPool } from './h2-sessions.js';
import type { UpstreamFailure } from '../http/h1/upstream-exchange.js';
import { Peer, peerName, type PeerAddress } from './peer.js';
import type { UpstreamServer } from './upstream-module.js';

/** A group of peers with its balancer and connection pool. */
export class UpstreamGroup {
  readonly name: string;
  readonly primaries: readonly Peer[];
  readonly backups: readonly Peer[];
  readonly pool: ConnectionPool;
  /** HTTP/2 sessions to the peers (grpc_pass), idle ones closed after the group's keepalive_timeout. */
  readonly h2: H2SessionPool<UpstreamFailure>;
  /** True for the group nginx makes for `proxy_pass http://host:port` without an `upstream` block. */
  readonly implicit: boolean;

  constructor(name: string, peers: readonly Peer[], limits: PoolLimits, implicit: boolean) {
    this.name = name;
    this.primaries = peers.filter((peer) => !peer.backup);
    this.backups = peers.filter((peer) => peer.backup);
    this.pool = new ConnectionPool(limits);
    this.h2 = new H2SessionPool(limits.idleTimeoutMs);
    this.implicit = implicit;
  }

  /** How many peers one request may try at most (nginx: every peer, backups included). */
  get size(): number {
    return this.primaries.length + this.backups.length;
  }

  /**
   * True for a group of one peer and no backup (nginx's `peers->single`): that peer is never taken
   * out by max_fails, since there is nowhere else to go (ngx_http_upstream_get_round_robin_peer).
   */
  get single(): boolean {
    return this.primaries.length === 1 && this.backups.length === 0;
  }

  /** The next peer for a request that has tried `tried`; backups only when no primary is available. */
  pick(tried: Set<Peer>, now = Date.now()): Peer | undefined {
    if (this.single) {
      const peer = this.primaries[0] as Peer;
      return tried.has(peer) || peer.down || (peer.maxConns > 0 && peer.conns >= peer.maxConns) ? undefined : peer;
    }
    return pickRoundRobin(this.primaries, tried, now) ?? (this.backups.length > 0 ? pickRoundRobin(this.backups, tried, now) : undefined);
  }

  /** Records a request's outcome on a peer; true when the peer is now out for fail_timeout. */
  record(peer: Peer, failed: boolean, now = Date.now()): boolean {
    // ngx_http_upstream_free_round_robin_peer() counts no failure for a single peer.
    if (this.single) return false;
    return recordOutcome(peer, failed, now);
  }

  /** Closes the idle connections and HTTP/2 sessions (the generation is gone). */
  close(): void {
    this.pool.close();
    this.h2.close();
  }
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

function peersOf(server: UpstreamServer): Peer[] {
  return resolveServerAddress(server.address).map(
    (address) =>
      new Peer({
        name: peerName(address),
        address,
        server: server.address,
        weight: server.weight,
        maxFails: server.maxFails,
        failTimeoutMs: server.failTimeout,
        maxConns: server.maxConns,
        backup: server.backup,
        down: server.down,
      }),
  );
}

/** Builds every `upstream` group of an `http` block. */
export function buildUpstreamGroups(http: ConfBlockView): Map<string, UpstreamGroup> {
  const groups = new Map<string, UpstreamGroup>();
  for (const block of http.blocks) {
    if (block.name !== 'upstream') continue;
    const name = block.args[0] ?? '';
    const peers = block.get('server').flatMap(peersOf);
    groups.set(
      name,
      new UpstreamGroup(
        name,
        peers,
        {
          maxIdle: block.get('keepalive'),
          maxRequests: block.get('keepalive_requests'),
          maxAgeMs: block.get('keepalive_time'),
          idleTimeoutMs: block.get('keepalive_timeout').timeoutMs,
        },
        false,
      ),
    );
  }
  return groups;
}

/** The group nginx creates for `proxy_pass http://host:port`: every address of the host, no keepalive cache. */
export function implicitGroup(host: string, port: number): UpstreamGroup {
  const address = host.startsWith('unix:') ? host : host.startsWith('[') ? `${host}:${port}` : isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const peers = resolveServerAddress(address, port).map(
    (resolved) => new Peer({ name: peerName(resolved), address: resolved, server: address, weight: 1, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false }),
  );
  return new UpstreamGroup(host.startsWith('unix:') ? host : `${host}:${port}`, peers, { maxIdle: 0, maxRequests: 0, maxAgeMs: 0, idleTimeoutMs: 0 }, true);
}
