/**
 * Failure counts shared among workers for groups with `zone` (zone-module.ts). nginx keeps them in
 * shared memory under a lock; here the master holds them: a worker reports each outcome that
 * matters (a failure, or a success while failures are counted), the master applies nginx's rule
 * (ngx_http_upstream_free_round_robin_peer()) to its copy, which is atomic because the master is
 * single-threaded, and sends the result to every worker, which overwrites its peer's counters.
 * Successes of a peer without failures send nothing: one message per failure, not per request.
 *
 * Active connections are shared too where the group's method compares them (`least_conn`,
 * `random two`), as nginx's `peer->conns` lives in the zone: a worker sends its own count of a
 * peer (the absolute count, at most once an event-loop turn, so that a burst costs one message),
 * the master keeps every worker's, and sends each other worker the sum of the rest
 * (`Peer.otherConns`). A worker's view of the others lags by one IPC round trip, where nginx's
 * shared memory has none.
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

/** Worker to master: the worker's active connections to a zone-shared peer. */
export interface PeerConnsMessage {
  readonly type: 'upstream-conns';
  readonly group: string;
  readonly peer: string;
  readonly conns: number;
}

/** Master to worker: the active connections of every other worker to a zone-shared peer. */
export interface PeerOtherConnsMessage {
  readonly type: 'upstream-other-conns';
  readonly group: string;
  readonly peer: string;
  readonly conns: number;
}

/** True when an IPC message is a worker's connection count. */
export function isPeerConns(message: unknown): message is PeerConnsMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'upstream-conns';
}

/** True when an IPC message is the master's count of the other workers' connections. */
export function isPeerOtherConns(message: unknown): message is PeerOtherConnsMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'upstream-other-conns';
}

/**
 * The master's copy of every worker's active connections to zone-shared peers. `W` identifies a
 * worker (its process object).
 */
export class MasterPeerConns<W> {
  readonly #counts = new Map<string, Map<W, number>>();

  /** Takes `from`'s count; returns, for each other worker in `workers`, what it is to be told. */
  apply(from: W, message: PeerConnsMessage, workers: Iterable<W>): [W, PeerOtherConnsMessage][] {
    const key = `${message.group}\0${message.peer}`;
    let counts = this.#counts.get(key);
    if (counts === undefined) this.#counts.set(key, (counts = new Map()));
    if (message.conns === 0) counts.delete(from);
    else counts.set(from, message.conns);
    if (counts.size === 0) this.#counts.delete(key);
    return this.#others(message.group, message.peer, counts, from, workers);
  }

  /** Forgets a worker that exited; returns what each remaining worker is to be told. */
  remove(gone: W, workers: Iterable<W>): [W, PeerOtherConnsMessage][] {
    const out: [W, PeerOtherConnsMessage][] = [];
    for (const [key, counts] of [...this.#counts]) {
      if (!counts.delete(gone)) continue;
      if (counts.size === 0) this.#counts.delete(key);
      const [group = '', peer = ''] = key.split('\0');
      out.push(...this.#others(group, peer, counts, gone, workers));
    }
    return out;
  }

  /** What a worker that just started is to be told: the counts of the workers already running. */
  snapshot(to: W): PeerOtherConnsMessage[] {
    const out: PeerOtherConnsMessage[] = [];
    for (const [key, counts] of this.#counts) {
      const [group = '', peer = ''] = key.split('\0');
      out.push({ type: 'upstream-other-conns', group, peer, conns: sum(counts, to) });
    }
    return out;
  }

  #others(group: string, peer: string, counts: ReadonlyMap<W, number> | undefined, changed: W, workers: Iterable<W>): [W, PeerOtherConnsMessage][] {
    const out: [W, PeerOtherConnsMessage][] = [];
    for (const worker of workers) {
      if (worker === changed) continue;
      out.push([worker, { type: 'upstream-other-conns', group, peer, conns: counts === undefined ? 0 : sum(counts, worker) }]);
    }
    return out;
  }
}

/** The counts of every worker but `except`. */
function sum<W>(counts: ReadonlyMap<W, number>, except: W): number {
  let total = 0;
  for (const [worker, conns] of counts) if (worker !== except) total += conns;
  return total;
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
  #send: ((message: PeerOutcomeMessage | PeerConnsMessage) => void) | undefined;
  readonly #peers = new Map<string, Set<Peer>>();
  /** Peers whose count changed this event-loop turn, sent at its end. */
  readonly #changed = new Set<Peer>();
  /** True while the end-of-turn send is scheduled. */
  #flushing = false;

  /** Sets where reports go (the worker's IPC channel); without it, nothing is shared. */
  useSender(send: (message: PeerOutcomeMessage | PeerConnsMessage) => void): void {
    this.#send = send;
  }

  /** Notes that the worker's active connections to `peer` changed; the count goes at the end of the turn. */
  connsChanged(peer: Peer): void {
    if (this.#send === undefined) return;
    this.#changed.add(peer);
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(() => {
      this.#flushing = false;
      // Two generations' peers of one name (a reload) are one peer in the zone: their counts add up.
      const counts = new Map<string, PeerConnsMessage>();
      for (const changed of this.#changed) {
        const key = `${changed.group}\0${changed.name}`;
        let conns = 0;
        for (const same of this.#peers.get(key) ?? [changed]) conns += same.conns;
        counts.set(key, { type: 'upstream-conns', group: changed.group, peer: changed.name, conns });
      }
      this.#changed.clear();
      for (const message of counts.values()) this.#send?.(message);
    });
  }

  /** Takes the master's count of the other workers' connections to a peer. */
  receiveConns(message: PeerOtherConnsMessage): void {
    for (const peer of this.#peers.get(`${message.group}\0${message.peer}`) ?? []) peer.otherConns = message.conns;
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
      peer.trackOut(Date.now());
    }
  }
}
