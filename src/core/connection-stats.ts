/**
 * nginx's `ngx_stat_*` counters (ngx_event.c, built with the stub_status module): connections
 * accepted, handled and active, requests, and how many connections are reading a request,
 * writing a response, or waiting idle. nginx keeps them in shared memory; a hitless worker keeps
 * its own here and the master sums the workers' (process/master-process.ts) for `stub_status`.
 */

/** The seven numbers `stub_status` prints. */
export interface StubStatusCounts {
  readonly accepted: number;
  readonly handled: number;
  readonly active: number;
  readonly requests: number;
  readonly reading: number;
  readonly writing: number;
  readonly waiting: number;
}

/** Where an accepted connection is: nginx's reusable (waiting), reading a head, writing, or neither (a stream session, a lingering close). */
export type ConnectionPhase = 'waiting' | 'reading' | 'writing' | 'none';

/** The counters of this process. */
export class ConnectionStats {
  accepted = 0;
  handled = 0;
  active = 0;
  requests = 0;
  reading = 0;
  writing = 0;
  waiting = 0;
  /** The sum over every worker, asked of the master; unset without one (`master_process off`). */
  #cluster: (() => Promise<StubStatusCounts>) | undefined;

  /** ngx_event_accept(): accepted, handled and active grow; the connection starts in `phase`. */
  open(phase: ConnectionPhase): ConnectionStat {
    this.accepted++;
    this.handled++;
    this.active++;
    return new ConnectionStat(this, phase);
  }

  /** An HTTP/2 stream: one request, writing until `done` is called. */
  stream(): () => void {
    this.requests++;
    this.writing++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.writing--;
    };
  }

  /** This process's numbers. */
  counts(): StubStatusCounts {
    return { accepted: this.accepted, handled: this.handled, active: this.active, requests: this.requests, reading: this.reading, writing: this.writing, waiting: this.waiting };
  }

  /** A worker asks its master for the sum over all workers. */
  useCluster(ask: (() => Promise<StubStatusCounts>) | undefined): void {
    this.#cluster = ask;
  }

  /** Every worker's numbers summed, or this process's when it has no master. */
  total(): Promise<StubStatusCounts> {
    return this.#cluster === undefined ? Promise.resolve(this.counts()) : this.#cluster();
  }
}

/** One accepted connection's place in the counters. */
export class ConnectionStat {
  readonly #stats: ConnectionStats;
  #phase: ConnectionPhase | undefined;

  constructor(stats: ConnectionStats, phase: ConnectionPhase) {
    this.#stats = stats;
    this.#phase = phase;
    this.#count(phase, 1);
  }

  /** Moves the connection to `phase` (nothing once closed). */
  set(phase: ConnectionPhase): void {
    if (this.#phase === undefined || this.#phase === phase) return;
    this.#count(this.#phase, -1);
    this.#phase = phase;
    this.#count(phase, 1);
  }

  /** ngx_http_create_request(): a request begins (its first bytes arrived), reading its head. */
  request(): void {
    if (this.#phase === undefined) return;
    this.#stats.requests++;
    this.set('reading');
  }

  /** ngx_close_connection(): no longer active. */
  close(): void {
    if (this.#phase === undefined) return;
    this.#count(this.#phase, -1);
    this.#phase = undefined;
    this.#stats.active--;
  }

  #count(phase: ConnectionPhase, by: number): void {
    if (phase !== 'none') this.#stats[phase] += by;
  }
}

/** Sums the workers' numbers. */
export function sumCounts(list: readonly StubStatusCounts[]): StubStatusCounts {
  const sum = { accepted: 0, handled: 0, active: 0, requests: 0, reading: 0, writing: 0, waiting: 0 };
  for (const counts of list) for (const key of Object.keys(sum) as (keyof StubStatusCounts)[]) sum[key] += counts[key];
  return sum;
}

/** The process's counters: nginx's are process globals pointing into shared memory; a worker has one set. */
export const connectionStats = new ConnectionStats();
