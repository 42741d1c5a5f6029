/**
 * `server name resolve [service=name]` (nginx 1.27.3, ngx_http_upstream_zone_module.c and its
 * stream twin): the name is resolved at run time by the group's `resolver`, again when the answer's
 * TTL (or `valid=`) runs out, and the group's peers follow the answers. A peer whose address stays
 * keeps its counters; a failed query (other than NXDOMAIN) leaves the peers as they were and is
 * tried again after `resolver_timeout` (at least a second); NXDOMAIN empties them. With
 * `service=`, the SRV records give the peers, their ports and weights, and the records of a
 * priority other than the best one become backups. The last answers are kept by the worker
 * (UpstreamRuntime.resolved), so that a reload starts from them, as nginx copies the resolved
 * peers of the old zone (ngx_http_upstream_zone_preresolve()).
 */
import type { ErrorLog } from '../core/log.js';
import { DNS_NXDOMAIN, dnsErrorText, type DnsClient } from '../core/dns-client.js';
import type { ResolverSetting } from '../conf/resolver-setting.js';
import type { Peer } from './peer.js';

/** What a `server ... resolve` line gives its peers (upstream-module.ts's UpstreamServer, which imports this module's runtime). */
export interface ResolvedServerLine {
  readonly address: string;
  readonly service: string | undefined;
  readonly weight: number;
  readonly backup: boolean;
}

/** One peer a `resolve` server line produced. */
export interface ResolvedAddress {
  readonly host: string;
  readonly port: number;
  /** nginx's `peer->server`: the server line's address, or the SRV record's target. */
  readonly server: string;
  readonly weight: number;
  readonly backup: boolean;
}

/** A server line's last answer, as the worker keeps it across reloads. */
export interface ResolvedAnswer {
  readonly addresses: readonly ResolvedAddress[];
  /** When the answer runs out (ms since the epoch). */
  readonly validUntil: number;
}

/** Worker to master: a `resolve` line's new answer, which the master hands to the workers of the next reload. */
export interface ResolvedAnswerMessage {
  readonly type: 'upstream-resolved';
  readonly key: string;
  readonly answer: ResolvedAnswer;
}

/** True when an IPC message is a worker's resolved answer. */
export function isResolvedAnswer(message: unknown): message is ResolvedAnswerMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'upstream-resolved';
}

/**
 * The last answer of every `resolve` line, by group, name and service. nginx keeps the resolved
 * peers in the zone, which outlives a reload; hitless's workers do not, so each answer also goes
 * to the master (when a sender is set), which gives them to the workers it starts next.
 */
export class ResolvedAnswers {
  readonly #answers = new Map<string, ResolvedAnswer>();
  #send: ((message: ResolvedAnswerMessage) => void) | undefined;

  /** Sets where new answers go (the worker's IPC channel to the master). */
  useSender(send: (message: ResolvedAnswerMessage) => void): void {
    this.#send = send;
  }

  get(key: string): ResolvedAnswer | undefined {
    return this.#answers.get(key);
  }

  set(key: string, answer: ResolvedAnswer): void {
    this.#answers.set(key, answer);
    this.#send?.({ type: 'upstream-resolved', key, answer });
  }

  /** Takes the answers the master kept (before the first generation is built). */
  seed(entries: readonly (readonly [string, ResolvedAnswer])[]): void {
    for (const [key, answer] of entries) this.#answers.set(key, answer);
  }
}

/** What a {@link ServerResolution} needs from the group around it. */
export interface ResolutionOptions {
  readonly dns: DnsClient;
  readonly setting: ResolverSetting;
  /** resolver_timeout, in ms. */
  readonly timeoutMs: number;
  /** Where the answers of this line are kept across reloads, under `key`. */
  readonly memory: ResolvedAnswers;
  readonly key: string;
  /** Builds a peer for an address of the line. */
  readonly makePeer: (address: ResolvedAddress) => Peer;
  /** Called after the line's peers changed. */
  readonly onChange: () => void;
  readonly log: (() => ErrorLog | undefined) | undefined;
}

/** The host and port of a `server` address (`name:port`, or `name` with `defaultPort`). */
export function hostAndPort(address: string, defaultPort: number): [string, number] {
  const colon = address.lastIndexOf(':');
  if (colon === -1) return [address, defaultPort];
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

function sameAddress(peer: Peer, address: ResolvedAddress): boolean {
  return peer.address.kind === 'tcp' && peer.address.host === address.host && peer.address.port === address.port && peer.server === address.server && peer.weight === address.weight && peer.backup === address.backup;
}

/** One `server ... resolve` line at run time: its current peers and the timer of its next query. */
export class ServerResolution {
  readonly #server: ResolvedServerLine;
  readonly #options: ResolutionOptions;
  readonly #host: string;
  readonly #port: number;
  #peers: readonly Peer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `defaultPort`: the port of a line without one (80 in http). */
  constructor(server: ResolvedServerLine, options: ResolutionOptions, defaultPort: number) {
    this.#server = server;
    this.#options = options;
    [this.#host, this.#port] = hostAndPort(server.address, defaultPort);
  }

  /** The line's peers now. */
  get peers(): readonly Peer[] {
    return this.#peers;
  }

  /** Takes the worker's last answer, if any, and schedules the next query (now, without one). */
  start(): void {
    const kept = this.#options.memory.get(this.#options.key);
    const server = this.#server;
    // ngx_http_upstream_zone_preresolve(): the old peers of the name, with this line's port and parameters.
    if (kept !== undefined) this.#apply(server.service !== undefined ? kept.addresses : kept.addresses.map((address) => ({ ...address, port: this.#port, server: server.address, weight: server.weight, backup: server.backup })));
    this.#schedule(kept === undefined ? 0 : Math.max(0, kept.validUntil - Date.now()));
  }

  /** Stops asking (the generation is gone). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    // A query that throws (it should not) is retried like a failed one, never left unhandled.
    this.#timer = setTimeout(() => void this.#query().catch(() => this.#schedule(Math.max(this.#options.timeoutMs, 1000))), delayMs);
    this.#timer.unref();
  }

  async #query(): Promise<void> {
    const { dns, setting, timeoutMs } = this.#options;
    const options = { ipv4: setting.ipv4, ipv6: setting.ipv6, timeoutMs };
    const service = this.#server.service;
    let code: number;
    let ttl: number;
    let addresses: ResolvedAddress[];
    if (service === undefined) {
      const answer = await dns.resolveAddresses(this.#host, options);
      ({ code, ttl } = answer);
      addresses = answer.addresses.map((host) => ({ host, port: this.#port, server: this.#server.address, weight: this.#server.weight, backup: this.#server.backup }));
      if (code !== 0) this.#log(`${this.#host} could not be resolved (${code}: ${dnsErrorText(code)})`);
    } else {
      const answer = await dns.resolveService(service, this.#host, options);
      ({ code, ttl } = answer);
      for (const failure of answer.failures) {
        this.#log(`${failure.name} could not be resolved (${failure.code}: ${dnsErrorText(failure.code)}) while resolving service ${service} of ${this.#host}`);
      }
      if (code !== 0) this.#log(`service ${service} of ${this.#host} could not be resolved (${code}: ${dnsErrorText(code)})`);
      const best = Math.min(...answer.addresses.map((address) => address.priority));
      addresses = answer.addresses.map((address) => ({
        host: address.address,
        port: address.port,
        server: address.name,
        // ngx_http_upstream_zone_resolve_handler(): the line's weight, unless it is 1; then the record's.
        weight: this.#server.weight !== 1 ? this.#server.weight : address.weight,
        backup: address.priority !== best,
      }));
    }
    if (this.#stopped) return;
    if (code !== 0 && code !== DNS_NXDOMAIN) {
      // A server failure or a timeout leaves the peers as they were.
      this.#schedule(Math.max(timeoutMs, 1000));
      return;
    }
    // nginx's resolver keeps an NXDOMAIN for `valid=`, else 10 seconds.
    const validMs = setting.validMs ?? (code === 0 ? ttl * 1000 : 10_000);
    this.#options.memory.set(this.#options.key, { addresses, validUntil: Date.now() + validMs });
    this.#apply(addresses);
    // The timer of ngx_http_upstream_zone_resolve_handler(): one second past the answer's end.
    this.#schedule(validMs + 1000);
  }

  /** Keeps the peers whose address is still there, makes the new ones, and tells the group if anything changed. */
  #apply(addresses: readonly ResolvedAddress[]): void {
    const left = [...this.#peers];
    let changed = addresses.length !== left.length;
    const peers = addresses.map((address) => {
      const index = left.findIndex((peer) => sameAddress(peer, address));
      if (index !== -1) return left.splice(index, 1)[0] as Peer;
      changed = true;
      return this.#options.makePeer(address);
    });
    if (!changed) return;
    this.#peers = peers;
    this.#options.onChange();
  }

  #log(message: string): void {
    this.#options.log?.()?.error(message);
  }
}
