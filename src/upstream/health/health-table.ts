/**
 * What the active health checks (`health_check`) decided, as a worker sees it. One checker per
 * group runs in the master (health/active.ts); it sends the whole table to every worker over IPC
 * whenever a peer changes state, and the balancers read it here on every pick. Keyed by group
 * and peer name, not by object, so that a reload's new groups see the same state at once.
 */

/** The health table key of a `stream` group, apart from an `http` group of the same name. */
export function streamHealthKey(group: string): string {
  return `stream:${group}`;
}

/** A peer's state under an active health check. */
export type PeerHealthState = 'up' | 'unhealthy' | 'checking';

/** Every checked group's peers: `{ group: { "127.0.0.1:8080": "up" } }`. */
export type HealthSnapshot = Readonly<Record<string, Readonly<Record<string, PeerHealthState>>>>;

/** The table one process keeps. */
export class UpstreamHealthTable {
  #snapshot: HealthSnapshot = {};

  /** Replaces the whole table (the master sends all of it each time). */
  replace(snapshot: HealthSnapshot): void {
    this.#snapshot = snapshot;
  }

  /**
   * True when the group's check has the peer out: unhealthy, or not yet checked under
   * `mandatory`. A peer no check knows is never out.
   */
  isUnhealthy(group: string, peer: string): boolean {
    const state = this.#snapshot[group]?.[peer];
    return state !== undefined && state !== 'up';
  }

  /** The state of a checked peer, or undefined when no check covers it. */
  stateOf(group: string, peer: string): PeerHealthState | undefined {
    return this.#snapshot[group]?.[peer];
  }

  /** The table as last received. */
  get snapshot(): HealthSnapshot {
    return this.#snapshot;
  }
}
