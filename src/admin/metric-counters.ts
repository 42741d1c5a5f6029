/**
 * Cumulative counters and histograms, kept by label set. A worker counts into one and sends its
 * snapshot to the master, which adds the snapshots of live workers to those of workers that
 * exited (process/master-metrics.ts): counters only ever grow, across reloads and respawns.
 */
import type { MetricFamily } from './metric-families.js';

/** One counter series: family name, rendered labels (`server="a",code="2xx"`), value. */
export type CounterSample = readonly [family: string, labels: string, value: number];

/**
 * One histogram series: family, labels, the count in each bucket (not cumulative; the last is
 * +Inf), the sum in whole microseconds, count. The sum is an integer so that adding the same
 * observations in another order (workers, the retired total) gives the same number: a float sum
 * can come out a rounding error lower, a counter going back.
 */
export type HistogramSample = readonly [family: string, labels: string, buckets: readonly number[], sumMicros: number, count: number];

/** One gauge series: family, labels, value. Gauges are read at scrape time, never kept. */
export type GaugeSample = readonly [family: string, labels: string, value: number];

/** Every counter and histogram of a {@link MetricCounters}, as it travels over IPC. */
export interface MetricsSnapshot {
  readonly counters: readonly CounterSample[];
  readonly histograms: readonly HistogramSample[];
}

interface Histogram {
  readonly family: string;
  readonly labels: string;
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface Counter {
  readonly family: string;
  readonly labels: string;
  value: number;
}

/**
 * Counters and histograms that only grow. Series are kept by family, then by labels: both are
 * strings a caller keeps (family names, the label texts it caches), whose hash V8 computes once,
 * where a key joined per call (`family{labels`) was a new string to hash on every request.
 */
export class MetricCounters {
  readonly #counters = new Map<string, Map<string, Counter>>();
  readonly #histograms = new Map<string, Map<string, Histogram>>();
  #version = 0;

  /** Bumped by every change: a sender sends only when it moved. */
  get version(): number {
    return this.#version;
  }

  /** Adds `by` (default 1, never negative) to the counter of `family` with `labels`. */
  add(family: MetricFamily, labels: string, by = 1): void {
    if (!(by > 0)) return;
    this.#addCounter(family.name, labels, by);
  }

  /** Counts `value` into the histogram of `family` with `labels`. */
  observe(family: MetricFamily, labels: string, value: number): void {
    const bounds = family.buckets ?? [];
    const histogram = this.#histogram(family.name, labels, bounds.length + 1);
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    histogram.buckets[i] = (histogram.buckets[i] ?? 0) + 1;
    histogram.sum += Math.round(value * 1_000_000);
    histogram.count++;
    this.#version++;
  }

  /** Adds every series of `snapshot` (another process's counts) to these. */
  merge(snapshot: MetricsSnapshot): void {
    for (const [family, labels, value] of snapshot.counters) this.#addCounter(family, labels, value);
    for (const [family, labels, buckets, sum, count] of snapshot.histograms) {
      const histogram = this.#histogram(family, labels, buckets.length);
      buckets.forEach((n, i) => {
        histogram.buckets[i] = (histogram.buckets[i] ?? 0) + n;
      });
      histogram.sum += sum;
      histogram.count += count;
    }
    this.#version++;
  }

  /** Every series, copied. */
  snapshot(): MetricsSnapshot {
    return {
      counters: [...this.#counters.values()].flatMap((series) => [...series.values()].map(({ family, labels, value }) => [family, labels, value] as const)),
      histograms: [...this.#histograms.values()].flatMap((series) => [...series.values()].map(({ family, labels, buckets, sum, count }) => [family, labels, [...buckets], sum, count] as const)),
    };
  }

  #addCounter(family: string, labels: string, by: number): void {
    let series = this.#counters.get(family);
    if (series === undefined) {
      series = new Map();
      this.#counters.set(family, series);
    }
    const counter = series.get(labels);
    if (counter === undefined) series.set(labels, { family, labels, value: by });
    else counter.value += by;
    this.#version++;
  }

  #histogram(family: string, labels: string, size: number): Histogram {
    let series = this.#histograms.get(family);
    if (series === undefined) {
      series = new Map();
      this.#histograms.set(family, series);
    }
    let histogram = series.get(labels);
    if (histogram === undefined) {
      histogram = { family, labels, buckets: new Array<number>(size).fill(0), sum: 0, count: 0 };
      series.set(labels, histogram);
    }
    return histogram;
  }
}

/** Sums snapshots into one. */
export function sumSnapshots(list: readonly MetricsSnapshot[]): MetricsSnapshot {
  const sum = new MetricCounters();
  for (const snapshot of list) sum.merge(snapshot);
  return sum.snapshot();
}

/** The label text of `pairs`, values escaped as the text format wants (backslash, double quote, newline). */
export function labelText(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',');
}

function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** True when a value is a {@link MetricsSnapshot} (an IPC message's, checked before use). */
export function isMetricsSnapshot(value: unknown): value is MetricsSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const { counters, histograms } = value as { counters?: unknown; histograms?: unknown };
  return Array.isArray(counters) && Array.isArray(histograms);
}
