/**
 * Failure counts shared among workers for groups with `zone` (zone-module.ts). nginx keeps them in
 * shared memory under a lock; here the master holds them: a worker reports each outcome that
 * matters (a failure, or a success while failures are counted), the master applies nginx's rule
 * (ngx_http_upstream_free_round_robin_peer()) to its copy, which is atomic because the master is
 * single-threaded, and sends the result to every worker, which overwrites its peer's counters.
 * Successes of a peer without failures send nothing: one message per failure, not per request.
 * Active connections (least_conn) stay per worker.
 */
import type { Peer } from './peer.js';

/** Worker to master: an outcome on a zone-shared peer. */
export interface PeerOutcomeMessage {
  readonly type: 'upstream-outcome';
  readonly group: string;
  readonly peer: string;
  readonly failed: boolean;
  readonly maxFails: number;
  /** The worker's `checked` (restarted when it chose the peer after fail_timeout). */
  readonly checked: number;
  readonly now: number;
}

/** Master to worker: a zone-shared peer's failure state. */
export interface PeerFailuresMessage {
  readonly type: 'upstream-failures';
  readonly group: string;
  readonly peer: string;
  readonly fails: number;
  readonly checked: number;
  readonly accessed: number;
}

/** True when an IPC message is a worker's outcome report. */
export function isPeerOutcome(message: unknown): message is PeerOutcomeMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'upstream-outcome';
}

/** True when an IPC message is the master's failure state for a peer. */
export function isPeerFailures(message: unknown): message is PeerFailuresMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'upstream-failures';
}

/** The master's copy of every zone-shared peer's failure state. */
export class MasterPeerFailures {
  readonly #peers = new Map<string, { fails: number; checked: number; accessed: number }>();

  /** Applies a worker's report; returns the state to send to every worker, or undefined when nothing changed. */
  apply(message: PeerOutcomeMessage): PeerFailuresMessage | undefined {
    const key = `${message.group}\0${message.peer}`;
    const state = this.#peers.get(key) ?? { fails: 0, checked: 0, accessed: 0 };
    this.#peers.set(key, state);
    state.checked = Math.max(state.checked, message.checked);
    if (message.failed) {
      state.fails++;
      state.accessed = message.now;
      state.checked = message.now;
    } else if (state.accessed < state.checked && state.fails > 0) {
      state.fails = 0;
    } else {
      return undefined;
    }
    return { type: 'upstream-failures', group: message.group, peer: message.peer, fails: state.fails, checked: state.checked, accessed: state.accessed };
  }
}

/** The worker's side: where reports go, and the peers that take the master's answers. */
export class SharedPeers {
  #send: ((message: PeerOutcomeMessage) => void) | undefined;
  readonly #peers = new Map<string, Set<Peer>>();

  /** Sets where reports go (the worker's IPC channel); without it, nothing is shared. */
  useSender(send: (message: PeerOutcomeMessage) => void): void {
    this.#send = send;
  }

  /** Registers a zone-shared peer of a live generation. */
  add(peer: Peer): void {
    const key = `${peer.group}\0${peer.name}`;
    let set = this.#peers.get(key);
    if (set === undefined) this.#peers.set(key, (set = new Set()));
    set.add(peer);
  }

  /** Forgets a peer whose generation is gone. */
  remove(peer: Peer): void {
    const key = `${peer.group}\0${peer.name}`;
    this.#peers.get(key)?.delete(peer);
    if (this.#peers.get(key)?.size === 0) this.#peers.delete(key);
  }

  /** Reports an outcome that matters: a failure, or a success while failures are counted. */
  report(peer: Peer, failed: boolean, now: number): void {
    if (this.#send === undefined || (!failed && peer.fails === 0)) return;
    this.#send({ type: 'upstream-outcome', group: peer.group, peer: peer.name, failed, maxFails: peer.maxFails, checked: peer.checked, now });
  }

  /** Takes the master's state for a peer. */
  receive(message: PeerFailuresMessage): void {
    for (const peer of this.#peers.get(`${message.group}\0${message.peer}`) ?? []) {
      peer.fails = message.fails;
      peer.checked = message.checked;
      peer.accessed = message.accessed;
    }
  }
}
