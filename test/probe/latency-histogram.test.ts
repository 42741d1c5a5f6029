import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LatencyHistogram } from '../../src/probe/latency-histogram.js';

describe('LatencyHistogram', () => {
  it('has no summary and zero percentiles when empty', () => {
    const histogram = new LatencyHistogram();
    assert.equal(histogram.summary(), undefined);
    assert.equal(histogram.percentile(0.5), 0);
  });

  it('is exact below 128 microseconds', () => {
    const histogram = new LatencyHistogram();
    for (let micros = 1; micros <= 100; micros++) histogram.record(micros / 1000);
    assert.equal(histogram.percentile(0.5), 0.05);
    assert.equal(histogram.percentile(0.99), 0.099);
    assert.equal(histogram.summary()?.max, 0.1);
  });

  it('answers nearest-rank percentiles within 1/128 of the value, with an exact maximum', () => {
    const histogram = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) histogram.record(ms);
    const summary = histogram.summary();
    assert.ok(summary);
    for (const [actual, expected] of [[summary.p50, 500], [summary.p90, 900], [summary.p99, 990]] as const) {
      assert.ok(actual >= expected && actual <= expected * (1 + 1 / 128), `${actual} for ${expected}`);
    }
    assert.equal(summary.max, 1000);
    assert.equal(histogram.count, 1000);
  });

  it('places values just below a power of two in the right bucket', () => {
    const histogram = new LatencyHistogram();
    const value = (2 ** 20 - 1) / 1000;
    histogram.record(value);
    histogram.record(value * 10); // so that the exact maximum does not cap the answer
    const p50 = histogram.percentile(0.5);
    assert.ok(p50 >= value && p50 <= value * (1 + 1 / 128), `${p50} for ${value}`);
  });
});
