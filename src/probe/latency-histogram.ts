/**
 * A latency histogram with bounded memory, so that a probe left running through a long deploy
 * keeps a constant footprint however many requests it sends. Buckets are log-linear, as in
 * HdrHistogram: exact below 128 µs, then 128 buckets per power of two, so a percentile is off
 * by less than 1/128 (0.8 %) of its value. The maximum is kept exactly.
 */

/** Sub-buckets per power of two, as a power of two itself. */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;

/** Percentiles of the recorded latencies, in milliseconds. */
export interface LatencyPercentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Records durations in microseconds and answers percentiles (nearest-rank). */
export class LatencyHistogram {
  #counts: number[] = [];
  #count = 0;
  #maxMicros = 0;

  /** How many durations were recorded. */
  get count(): number {
    return this.#count;
  }

  /** Records one duration given in milliseconds (fractions kept to the microsecond). */
  record(ms: number): void {
    const micros = Math.max(0, Math.round(ms * 1000));
    const index = bucketIndex(micros);
    while (this.#counts.length <= index) this.#counts.push(0);
    this.#counts[index] = (this.#counts[index] ?? 0) + 1;
    this.#count += 1;
    if (micros > this.#maxMicros) this.#maxMicros = micros;
  }

  /** The value at or below which `fraction` (0 to 1) of the recordings fall, in milliseconds; 0 when empty. */
  percentile(fraction: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(fraction * this.#count));
    let seen = 0;
    for (let index = 0; index < this.#counts.length; index++) {
      seen += this.#counts[index] ?? 0;
      // The bucket's upper bound, never above the exact maximum: a percentile cannot exceed it.
      if (seen >= rank) return Math.min(bucketUpperBound(index), this.#maxMicros) / 1000;
    }
    return this.#maxMicros / 1000;
  }

  /** p50, p90, p99 and max in milliseconds, or undefined when nothing was recorded. */
  summary(): LatencyPercentiles | undefined {
    if (this.#count === 0) return undefined;
    return {
      p50: this.percentile(0.5),
      p90: this.percentile(0.9),
      p99: this.percentile(0.99),
      max: this.#maxMicros / 1000,
    };
  }
}

/** Bucketed values stop at 2^31 - 1 µs (about 35 minutes), far beyond any request timeout. */
const MAX_BUCKETED = 0x7fff_ffff;

function bucketIndex(micros: number): number {
  const value = Math.min(micros, MAX_BUCKETED);
  if (value < SUB_COUNT) return value;
  // clz32 rather than Math.log2, whose rounding misplaces values just below a power of two.
  const shift = 31 - Math.clz32(value) - SUB_BITS;
  const mantissa = value >>> shift; // in [SUB_COUNT, 2 * SUB_COUNT)
  return (shift + 1) * SUB_COUNT + (mantissa - SUB_COUNT);
}

function bucketUpperBound(index: number): number {
  if (index < SUB_COUNT) return index;
  const shift = Math.floor(index / SUB_COUNT) - 1;
  const mantissa = (index % SUB_COUNT) + SUB_COUNT;
  return (mantissa + 1) * 2 ** shift - 1;
}
