/**
 * What a probe found, and the tally that builds it. Every request that was sent ends in exactly
 * one bucket, a status in `byStatus` or an error in `byError`, so the counts always add up:
 * `ok + failed === total`, and `total` is the sum of both maps.
 */
import { STATUS_CODES } from 'node:http';
import { LatencyHistogram, type LatencyPercentiles } from './latency-histogram.js';
import type { ProbeOutcome } from './probe-request.js';

/** Why a probe stopped sending: its duration elapsed, its request budget was spent, or its signal aborted. */
export type ProbeStopReason = 'duration' | 'requests' | 'signal';

/** One failed request, kept so that a failure can be matched to the reload or deploy that caused it. */
export interface ProbeFailure {
  /** When the request ended, in milliseconds since the probe started. */
  readonly atMs: number;
  /** The status code (`"503"`) or the error (`"reset"`, `"EPIPE"`) it ended with. */
  readonly outcome: string;
  /** What Node or the server said. */
  readonly message: string;
}

/** The result of a probe: counts of every outcome, latency, and rate. */
export interface ProbeReport {
  /** The URL probed. */
  readonly url: string;
  /** Keep-alive connections, or a new connection per request. */
  readonly mode: 'keep-alive' | 'new-connections';
  /** Requests that were kept in flight at once. */
  readonly concurrency: number;
  /** Requests sent and ended, one way or another. */
  readonly total: number;
  /** Requests answered with a complete 2xx response. */
  readonly ok: number;
  /** Requests answered with another status, or not answered completely: `total - ok`. */
  readonly failed: number;
  /** Complete responses by status code (`{ "200": 980, "503": 20 }`), 2xx included. */
  readonly byStatus: Readonly<Record<string, number>>;
  /** Requests without a complete response, by ProbeErrorKind or error code (`{ "reset": 3 }`). */
  readonly byError: Readonly<Record<string, number>>;
  /** Latency of complete responses, any status, in milliseconds; null when there were none. */
  readonly latencyMs: LatencyPercentiles | null;
  /** From the first request sent to the last one ended, in milliseconds. */
  readonly elapsedMs: number;
  /** `total` over `elapsedMs`, to one decimal. */
  readonly requestsPerSecond: number;
  /** TCP connections the probe established; more than `concurrency` in keep-alive mode means the server closed some. */
  readonly connections: number;
  /** What ended the probe. */
  readonly stoppedBy: ProbeStopReason;
  /** The first failures, in order, at most `MAX_FAILURE_SAMPLES`. */
  readonly firstFailures: readonly ProbeFailure[];
}

/** How many failures a report keeps verbatim; the counts cover all of them. */
export const MAX_FAILURE_SAMPLES = 10;

/** Counts outcomes as they arrive and turns them into a ProbeReport. */
export class ProbeTally {
  #byStatus = new Map<number, number>();
  #byError = new Map<string, number>();
  #latency = new LatencyHistogram();
  #failures: ProbeFailure[] = [];
  #total = 0;
  #ok = 0;

  /** Counts one outcome that ended `atMs` after the probe started. */
  add(outcome: ProbeOutcome, atMs: number): void {
    this.#total += 1;
    if (outcome.kind === 'error') {
      this.#byError.set(outcome.error, (this.#byError.get(outcome.error) ?? 0) + 1);
      this.#sample({ atMs: toMicros(atMs), outcome: outcome.error, message: outcome.message });
      return;
    }
    this.#byStatus.set(outcome.status, (this.#byStatus.get(outcome.status) ?? 0) + 1);
    this.#latency.record(outcome.latencyMs);
    if (outcome.status >= 200 && outcome.status <= 299) {
      this.#ok += 1;
    } else {
      const text = STATUS_CODES[outcome.status];
      const message = text === undefined ? `HTTP ${outcome.status}` : `HTTP ${outcome.status} ${text}`;
      this.#sample({ atMs: toMicros(atMs), outcome: String(outcome.status), message });
    }
  }

  /** The report so far. */
  report(run: Pick<ProbeReport, 'url' | 'mode' | 'concurrency' | 'elapsedMs' | 'connections' | 'stoppedBy'>): ProbeReport {
    const latency = this.#latency.summary();
    return {
      url: run.url,
      mode: run.mode,
      concurrency: run.concurrency,
      total: this.#total,
      ok: this.#ok,
      failed: this.#total - this.#ok,
      byStatus: Object.fromEntries([...this.#byStatus].sort(([a], [b]) => a - b).map(([status, n]) => [String(status), n])),
      byError: Object.fromEntries([...this.#byError].sort(([a], [b]) => a.localeCompare(b))),
      latencyMs: latency ?? null,
      elapsedMs: toMicros(run.elapsedMs),
      requestsPerSecond: run.elapsedMs > 0 ? Math.round((this.#total * 10_000) / run.elapsedMs) / 10 : 0,
      connections: run.connections,
      stoppedBy: run.stoppedBy,
      firstFailures: [...this.#failures],
    };
  }

  #sample(failure: ProbeFailure): void {
    if (this.#failures.length < MAX_FAILURE_SAMPLES) this.#failures.push(failure);
  }
}

/** Milliseconds rounded to the microsecond: finer digits are timer noise. */
function toMicros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
