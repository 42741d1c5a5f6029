/**
 * The upstream request cycle every protocol shares, as ngx_http_upstream.c is for proxy, grpc and
 * fastcgi: {@link UpstreamCycle} is one request's (or stream session's) walk over a group's peers,
 * {@link UpstreamAttempt} one try on one peer. A protocol adapter (HTTP/1 in http/proxy.ts, HTTP/2
 * in http/grpc.ts, TCP in stream/proxy.ts, UDP in stream/udp-session.ts) asks the cycle for the
 * next attempt, connects with upstream/peer-connect.ts, speaks its protocol, and ends the attempt
 * with `finish(outcome)`. `finish` runs exactly once per attempt, whatever ends it (the response,
 * an upstream error, a timeout, the client going away, the worker's drain): it lowers the peer's
 * active count raised when the peer was picked (nginx's `peer.get` / `peer.free` pair), records
 * the outcome for passive health (max_fails within fail_timeout, shared through `zone`), and
 * publishes `hitless:upstream:finish`. Any later call is a no-op, so an adapter may call it from
 * every path that can end an attempt without keeping its own books.
 */
import { channels, type AttemptOutcome, type UpstreamProtocol } from '../core/diagnostics.js';
import type { Balanced, PeerPicker } from './balancers/balancer.js';
import type { UpstreamGroup } from './group.js';
import type { Peer } from './peer.js';

/** proxy_next_upstream_tries and proxy_next_upstream_timeout (and their grpc_ and stream twins): 0 for no limit. */
export interface RetryLimits {
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
}

/** One request's or session's walk over the peers of a group. */
export class UpstreamCycle<R extends Balanced = Balanced> {
  readonly protocol: UpstreamProtocol;
  readonly group: UpstreamGroup<R>;
  /** The peers tried so far (nginx's `tried` bitmap): a retry goes elsewhere. */
  readonly tried = new Set<Peer>();
  /** When the walk began (Date.now()), for proxy_next_upstream_timeout. */
  readonly startedAt = Date.now();
  readonly #picker: PeerPicker;
  readonly #limits: RetryLimits;
  #current: UpstreamAttempt | undefined;
  #tries = 0;

  /** `request` is what the balancer places (ip_hash's address, hash's key, sticky's cookie). */
  constructor(protocol: UpstreamProtocol, group: UpstreamGroup<R>, request: R | undefined, limits: RetryLimits) {
    this.protocol = protocol;
    this.group = group;
    this.#picker = group.begin(request);
    this.#limits = limits;
  }

  /** The attempt in progress, or undefined between two. */
  get current(): UpstreamAttempt | undefined {
    return this.#current?.finished === false ? this.#current : undefined;
  }

  /** Attempts made so far. */
  get tries(): number {
    return this.#tries;
  }

  /**
   * Picks the next peer and starts an attempt on it, raising the peer's active count; undefined
   * when no peer is available (nginx's NGX_BUSY: "no live upstreams"). A previous attempt still
   * open is finished as `next` first.
   */
  next(now = Date.now()): UpstreamAttempt | undefined {
    this.#current?.finish('next');
    const peer = this.#picker.pick(this.tried, now);
    if (peer === undefined) return undefined;
    this.tried.add(peer);
    this.#tries++;
    peer.conns++;
    this.group.connsChanged(peer);
    const attempt = new UpstreamAttempt(this, peer, this.#tries);
    this.#current = attempt;
    return attempt;
  }

  /**
   * True when a failed request may go to another peer: one is left that was not tried, and
   * neither proxy_next_upstream_tries nor proxy_next_upstream_timeout is used up.
   */
  mayRetry(now = Date.now()): boolean {
    const limits = this.#limits;
    if (this.tried.size >= this.group.size) return false;
    if (limits.nextTries > 0 && this.#tries >= limits.nextTries) return false;
    return !(limits.nextTimeoutMs > 0 && now - this.startedAt >= limits.nextTimeoutMs);
  }

  /** Ends the attempt in progress, if any: the client went away (`aborted`) or the worker is going (`drained`). */
  stop(outcome: 'aborted' | 'drained'): void {
    this.#current?.finish(outcome);
  }

  /** What the balancer adds to the response of the peer that answered (`sticky cookie`'s Set-Cookie). */
  responseHeaders(peer: Peer): readonly string[] | undefined {
    return this.#picker.responseHeaders?.(peer);
  }

  /** Tells the balancer that an attempt ended well (`sticky learn`); called by {@link UpstreamAttempt.finish}. */
  answered(peer: Peer): void {
    this.#picker.answered?.(peer);
  }
}

/** One try on one peer: from the pick to `finish`. */
export class UpstreamAttempt {
  readonly peer: Peer;
  /** 1 for the first attempt of the walk, 2 for the first retry... */
  readonly number: number;
  readonly #cycle: UpstreamCycle<never>;
  readonly #startedAt = performance.now();
  #connectMs = -1;
  #headerMs = -1;
  #finished = false;

  constructor(cycle: UpstreamCycle<never>, peer: Peer, number: number) {
    this.#cycle = cycle;
    this.peer = peer;
    this.number = number;
  }

  /** True once `finish` ran. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Milliseconds since the attempt began. */
  elapsedMs(): number {
    return performance.now() - this.#startedAt;
  }

  /**
   * The connection is ready (connected and through TLS, or taken from the pool). A stream TCP
   * peer chosen again past fail_timeout is live from here, not from the session's end, so that
   * the connections that follow go to it too (ngx_stream_upstream_notify_round_robin_peer() on
   * NGX_STREAM_UPSTREAM_NOTIFY_CONNECT: "if (peer->accessed < peer->checked) peer->fails = 0").
   */
  connected(): void {
    if (this.#connectMs >= 0) return;
    this.#connectMs = this.elapsedMs();
    if (this.#cycle.protocol === 'tcp' && this.peer.accessed < this.peer.checked) this.#cycle.group.record(this.peer, false);
  }

  /**
   * The response head (or the first byte back) arrived: its latency goes to the balancer for the
   * methods that balance by it (`ewma`). Returns the latency in ms.
   */
  responded(): number {
    const latency = this.elapsedMs();
    if (this.#headerMs < 0) {
      this.#headerMs = latency;
      this.#cycle.group.observe(this.peer, latency);
    }
    return latency;
  }

  /**
   * Ends the attempt, once (later calls do nothing and return false): the peer's active count
   * goes down, a `failed` outcome counts against it (nginx's NGX_PEER_FAILED), any other is a
   * success for passive health, as ngx_http_upstream_finalize_request() frees the peer with
   * state 0 for a client that closed the connection too. Returns true when this failure took the
   * peer out (max_fails reached), which nginx logs as "upstream server temporarily disabled".
   */
  finish(outcome: AttemptOutcome, reason = ''): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    const { peer, group, protocol } = { peer: this.peer, group: this.#cycle.group, protocol: this.#cycle.protocol };
    peer.conns--;
    group.connsChanged(peer);
    const disabled = group.record(peer, outcome === 'failed');
    if (outcome !== 'failed' && outcome !== 'next') this.#cycle.answered(peer);
    const finish = channels.upstreamFinish;
    if (finish.hasSubscribers) {
      finish.publish({
        protocol,
        group: group.name,
        peer: peer.name,
        outcome,
        reason,
        attempt: this.number,
        timings: { connectMs: this.#connectMs, headerMs: this.#headerMs, totalMs: this.elapsedMs() },
      });
    }
    return disabled;
  }
}
