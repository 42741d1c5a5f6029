/**
 * A worker's side of the metrics: its cumulative counters (http/request-metrics.ts) go to the
 * master as a whole snapshot every {@link METRICS_PUSH_MS} while they change, in answer to each
 * scrape, and as the worker exits. The master keeps the last snapshot of each worker and, once the
 * worker is gone, adds it to a retired total: a worker killed with SIGKILL loses what it counted
 * in its last interval at most, never what it reported before (docs/observability.md).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { connectionStats } from '../core/connection-stats.js';
import type { ExpositionFormat } from '../admin/exposition.js';
import { RequestMetrics } from '../http/request-metrics.js';
import type { PeerState } from '../upstream/group.js';
import type { UpstreamRuntime } from '../upstream/upstream-runtime.js';
import { compactPeerStates } from '../upstream/upstream-report.js';
import type { MetricsAnswerMessage, MetricsReportMessage, MetricsRequestMessage } from './ipc.js';

/** How often a worker sends its counters while they change: the most a SIGKILL can lose. */
export const METRICS_PUSH_MS = 100;

/** The event loop delay is reported over windows this long. */
const LOOP_WINDOW_MS = 10_000;

/** How long a worker's `hitless_metrics` request waits for the master's text. */
const METRICS_WAIT_MS = 2_000;

/** The worker's counters and what it sends of them. */
export class WorkerMetrics {
  readonly #metrics = new RequestMetrics();
  readonly #send: (message: MetricsReportMessage) => void;
  readonly #loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  #window: { p99: number; max: number } | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  #sentVersion = -1;
  #sentCounts = '';

  readonly #upstreams: Pick<UpstreamRuntime, 'outPeers' | 'outWindows'> | undefined;

  /**
   * `send` posts a report to the master (nothing when the channel is closed); `upstreams` has the
   * max_fails windows of the worker's peers, for the downtime metric (default: none reported).
   */
  constructor(send: (message: MetricsReportMessage) => void, upstreams?: Pick<UpstreamRuntime, 'outPeers' | 'outWindows'>) {
    this.#send = send;
    this.#upstreams = upstreams;
    this.#loop.enable();
    const push = setInterval(() => this.#push(), METRICS_PUSH_MS);
    const window = setInterval(() => {
      this.#window = { p99: this.#loop.percentile(99), max: this.#loop.max };
      this.#loop.reset();
    }, LOOP_WINDOW_MS);
    // Reports never keep a worker alive that has nothing else to do.
    push.unref();
    window.unref();
    this.#timers.push(push, window);
  }

  /** The report answering a scrape's question `id`, with the worker's view of its upstream peers. */
  report(id: number, upstreams: readonly PeerState[]): MetricsReportMessage {
    return { ...this.#report(id), upstreams: compactPeerStates(upstreams) };
  }

  /** The last word, as the worker exits: everything it counted. */
  final(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#loop.disable();
    this.#metrics.close();
    this.#send(this.#report(0));
  }

  #push(): void {
    const counts = connectionStats.counts();
    const countsKey = `${counts.accepted},${counts.handled},${counts.requests},${counts.active},${counts.reading},${counts.writing},${counts.waiting}`;
    // A peer out keeps the reports coming: the master counts its downtime up to the latest one.
    if (this.#metrics.counters.version === this.#sentVersion && countsKey === this.#sentCounts && (this.#upstreams?.outPeers.size ?? 0) === 0) return;
    this.#sentCounts = countsKey;
    this.#send(this.#report(0));
  }

  #report(id: number): MetricsReportMessage {
    this.#sentVersion = this.#metrics.counters.version;
    const at = Date.now();
    const downWindows = this.#upstreams?.outWindows(at) ?? [];
    const window = this.#window ?? { p99: this.#loop.count > 0 ? this.#loop.percentile(99) : 0, max: this.#loop.count > 0 ? this.#loop.max : 0 };
    return {
      type: 'metrics-report',
      id,
      snapshot: this.#metrics.counters.snapshot(),
      counts: connectionStats.counts(),
      rssBytes: process.memoryUsage.rss(),
      loopLagSeconds: window.p99 / 1e9,
      loopLagMaxSeconds: window.max / 1e9,
      at,
      ...(downWindows.length === 0 ? {} : { downWindows }),
    };
  }
}

/** The worker's side of `hitless_metrics`: asks the master for the exposition of every worker. */
export class IpcMetricsText {
  readonly #send: (message: MetricsRequestMessage) => boolean;
  readonly #pending = new Map<number, (text: string | undefined) => void>();
  #next = 1;

  /** `send` posts a message to the master and returns false when the channel is closed. */
  constructor(send: (message: MetricsRequestMessage) => boolean) {
    this.#send = send;
  }

  /** The master's text; rejects when it does not answer in time or is gone (the request gets a 500). */
  ask(format: ExpositionFormat): Promise<string> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => settle(undefined), METRICS_WAIT_MS);
      const settle = (text: string | undefined): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        if (text === undefined) reject(new Error('the master process sent no metrics'));
        else resolve(text);
      };
      this.#pending.set(id, settle);
      if (!this.#send({ type: 'metrics-request', id, format })) settle(undefined);
    });
  }

  /** Settles the question an answer is for. */
  receive(message: MetricsAnswerMessage): void {
    this.#pending.get(message.id)?.(message.text);
  }

  /** The master is gone: every question in flight fails. */
  failAll(): void {
    for (const settle of [...this.#pending.values()]) settle(undefined);
  }
}
