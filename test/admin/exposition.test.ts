/**
 * The exposition writer and the counters it writes from: the 0.0.4 and OpenMetrics forms of each
 * type, label escaping, cumulative buckets, the Accept negotiation, and merged snapshots.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatOfAccept, renderExposition } from '../../src/admin/exposition.js';
import { METRIC_FAMILIES as F } from '../../src/admin/metric-families.js';
import { labelText, MetricCounters, sumSnapshots, type MetricsSnapshot } from '../../src/admin/metric-counters.js';

describe('metrics exposition', () => {
  it('picks OpenMetrics only when Accept names it with a q above 0', () => {
    assert.equal(formatOfAccept(undefined), 'prometheus');
    assert.equal(formatOfAccept('text/plain'), 'prometheus');
    assert.equal(formatOfAccept('application/openmetrics-text'), 'openmetrics');
    assert.equal(formatOfAccept('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'), 'openmetrics');
    assert.equal(formatOfAccept('text/plain, Application/OpenMetrics-Text; q=0'), 'prometheus');
  });

  it('escapes label values as the text format wants', () => {
    assert.equal(labelText([['server', 'a"b\\c\nd'], ['code', '2xx']]), 'server="a\\"b\\\\c\\nd",code="2xx"');
  });

  it('writes counters with _total, histograms with cumulative buckets, each family once', () => {
    const counters = new MetricCounters();
    counters.add(F.httpRequests, 'server="a",code="2xx"');
    counters.add(F.httpRequests, 'server="b",code="5xx"', 2);
    counters.observe(F.httpRequestDuration, 'server="a"', 0.003);
    counters.observe(F.httpRequestDuration, 'server="a"', 0.2);
    counters.observe(F.httpRequestDuration, 'server="a"', 60);
    const text = renderExposition({ snapshot: counters.snapshot(), gauges: [[F.connectionsActive.name, '', 3]] }, 'prometheus');
    assert.match(text, /^# HELP hitless_http_requests_total .+\n# TYPE hitless_http_requests_total counter\nhitless_http_requests_total\{server="a",code="2xx"\} 1\nhitless_http_requests_total\{server="b",code="5xx"\} 2\n/);
    assert.match(text, /hitless_http_request_duration_seconds_bucket\{server="a",le="0.005"\} 1\n/);
    assert.match(text, /hitless_http_request_duration_seconds_bucket\{server="a",le="0.25"\} 2\n/);
    assert.match(text, /hitless_http_request_duration_seconds_bucket\{server="a",le="10"\} 2\n/);
    assert.match(text, /hitless_http_request_duration_seconds_bucket\{server="a",le="\+Inf"\} 3\n/);
    assert.match(text, /hitless_http_request_duration_seconds_count\{server="a"\} 3\n/);
    assert.match(text, /# TYPE hitless_connections_active gauge\nhitless_connections_active 3\n/);
    assert.equal(text.match(/# TYPE hitless_http_requests_total/g)?.length, 1);
    assert.doesNotMatch(text, /# EOF/);
  });

  it('names an OpenMetrics counter family without _total, writes float bounds and ends with # EOF', () => {
    const counters = new MetricCounters();
    counters.add(F.tlsHandshakes, '');
    counters.observe(F.httpRequestDuration, '', 1);
    const text = renderExposition({ snapshot: counters.snapshot(), gauges: [] }, 'openmetrics');
    assert.match(text, /# TYPE hitless_tls_handshakes counter\nhitless_tls_handshakes_total 1\n/);
    assert.match(text, /hitless_http_request_duration_seconds_bucket\{le="1.0"\} 1\n/);
    assert.match(text, /\n# EOF\n$/);
  });

  it('sums snapshots series by series, histograms bucket by bucket', () => {
    const a = new MetricCounters();
    const b = new MetricCounters();
    a.add(F.httpRequests, 'code="2xx"', 3);
    b.add(F.httpRequests, 'code="2xx"', 4);
    b.add(F.httpRequests, 'code="4xx"');
    a.observe(F.upstreamPeerResponseTime, 'peer="p"', 0.01);
    b.observe(F.upstreamPeerResponseTime, 'peer="p"', 0.5);
    const sum = sumSnapshots([a.snapshot(), b.snapshot()]);
    assert.deepEqual(sum.counters, [['hitless_http_requests', 'code="2xx"', 7], ['hitless_http_requests', 'code="4xx"', 1]]);
    const [histogram] = sum.histograms;
    assert.equal(histogram?.[4], 2);
    assert.equal(histogram?.[3], 510_000, 'the sum in whole microseconds');
    assert.deepEqual(histogram?.[2], [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('keeps a series per family and labels: the same labels in two families, and labels built anew, count apart and together', () => {
    const counters = new MetricCounters();
    const server = labelText([['server', 'a']]);
    counters.add(F.httpRequests, `${server},code="2xx"`);
    counters.add(F.httpResponseBytes, server, 10);
    counters.add(F.tlsHandshakes, '');
    // The same text made again (not the same string object) is the same series.
    counters.add(F.httpRequests, [server, 'code="2xx"'].join(','), 2);
    counters.add(F.httpResponseBytes, server, 5);
    counters.observe(F.httpRequestDuration, server, 0.001);
    counters.observe(F.upstreamPeerResponseTime, server, 0.001);
    const { counters: series, histograms } = counters.snapshot();
    assert.deepEqual(series, [['hitless_http_requests', 'server="a",code="2xx"', 3], ['hitless_http_response_bytes', 'server="a"', 15], ['hitless_tls_handshakes', '', 1]]);
    assert.deepEqual(histograms.map(([family, labels, , , count]) => [family, labels, count]), [[F.httpRequestDuration.name, 'server="a"', 1], [F.upstreamPeerResponseTime.name, 'server="a"', 1]]);
  });

  it('sums a histogram to the same value whatever the order of the snapshots (no float rounding)', () => {
    const parts = [0.001, 0.03, 0.036].map((value) => {
      const counters = new MetricCounters();
      counters.observe(F.httpRequestDuration, '', value);
      return counters.snapshot();
    });
    const sums = [[0, 1, 2], [2, 1, 0], [1, 0, 2]].map((order) => sumSnapshots(order.map((i) => parts[i] as MetricsSnapshot)).histograms[0]?.[3]);
    assert.deepEqual(sums, [67_000, 67_000, 67_000]);
    const text = renderExposition({ snapshot: sumSnapshots(parts), gauges: [] }, 'prometheus');
    assert.match(text, /hitless_http_request_duration_seconds_sum 0\.067\n/);
  });

  it('counts nothing for a negative or zero amount: a counter never goes down', () => {
    const counters = new MetricCounters();
    counters.add(F.httpResponseBytes, '', -5);
    counters.add(F.httpResponseBytes, '', 0);
    assert.deepEqual(counters.snapshot().counters, []);
  });
});
