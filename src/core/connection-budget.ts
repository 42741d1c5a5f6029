/**
 * `worker_connections`: the most connections one worker holds at once, client and upstream alike,
 * as nginx's connection array bounds them (ngx_get_connection()). When the budget runs low, idle
 * connections (keep-alive clients between requests, new ones that sent nothing yet: nginx's
 * reusable queue) are closed to make room, oldest first (ngx_drain_connections()); when nothing is
 * left to close, the new connection is refused and nginx's alert is logged.
 */

/** One connection's place in the budget; released once, however often release() is called. */
export interface ConnectionSlot {
  release(): void;
}

/** A holder of idle connections the budget may close to make room. */
export interface IdleReclaimer {
  /** How many of its connections are idle now. */
  idleCount(): number;
  /** Closes up to `max` idle connections, oldest first, releasing their slots; returns how many it closed. */
  closeIdle(max: number): number;
}

/** Where the budget reports: the error log's [warn] and [alert]. */
export interface BudgetLog {
  warn(message: string): void;
  alert(message: string): void;
}

/** The connections of one worker process. */
export class ConnectionBudget {
  /** nginx's default. */
  #limit = 512;
  #open = 0;
  readonly #reclaimers = new Set<IdleReclaimer>();
  #log: BudgetLog = { warn: () => undefined, alert: () => undefined };
  /** The second of the last "reusing connections" warning: nginx logs it at most once a second. */
  #warnedAt = 0;

  /** The newest configuration's worker_connections, and the error log to report to. */
  configure(limit: number, log: BudgetLog): void {
    this.#limit = limit;
    this.#log = log;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Connections held now. */
  get open(): number {
    return this.#open;
  }

  /** Registers a source of idle connections; the returned function unregisters it. */
  addReclaimer(reclaim: IdleReclaimer): () => void {
    this.#reclaimers.add(reclaim);
    return () => this.#reclaimers.delete(reclaim);
  }

  /**
   * A slot for a new connection, or undefined when the worker holds `limit` and no idle one could
   * be closed (then nginx's "N worker_connections are not enough" is logged at [alert]).
   * `what` ends the alert, e.g. " while connecting to upstream".
   */
  take(what = ''): ConnectionSlot | undefined {
    // ngx_get_connection(): fewer than a sixteenth free, and idle connections are closed ahead of need.
    if (this.#limit - this.#open < this.#limit / 16) this.#reclaim();
    if (this.#open >= this.#limit) {
      this.#log.alert(`${this.#limit} worker_connections are not enough${what}`);
      return undefined;
    }
    this.#open++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#open--;
      },
    };
  }

  // ngx_drain_connections(): an eighth of the reusable ones, at least one, at most 32 per call.
  #reclaim(): void {
    let idle = 0;
    for (const reclaimer of this.#reclaimers) idle += reclaimer.idleCount();
    if (idle === 0) return;
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#warnedAt) {
      this.#warnedAt = second;
      this.#log.warn(`${this.#limit} worker_connections are not enough, reusing connections`);
    }
    let left = Math.max(1, Math.min(32, Math.floor(idle / 8)));
    for (const reclaimer of this.#reclaimers) {
      if (left <= 0) return;
      left -= reclaimer.closeIdle(left);
    }
  }
}
