/**
 * hitless's `hitless_metrics`: a location (or a server's requests that match no location) answers
 * GET and HEAD with the Prometheus metrics, summed over every worker by the master, as `stub_status`
 * answers with the connection counters; it is the public scrape address, next to the admin API's
 * `GET /metrics`. nginx has no equivalent (NGINX Plus has `api`); docs/observability.md lists the
 * metrics.
 */
import { defineDirective, type ConfModule } from '../conf/registry.js';
import { connectionStats } from '../core/connection-stats.js';
import { METRIC_FAMILIES as F } from '../admin/metric-families.js';
import type { GaugeSample, MetricsSnapshot } from '../admin/metric-counters.js';
import { renderExposition, type ExpositionFormat } from '../admin/exposition.js';
import type { RequestMetrics } from './request-metrics.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    hitless_metrics: boolean;
  }
}

/** Where `hitless_metrics` gets its text: in a worker, the master's sum over every worker. */
export type MetricsSource = (format: ExpositionFormat) => Promise<string>;

/**
 * The metrics of this process alone, for a server run from code (`master_process off`): its
 * request counters, if it keeps them, and its connection counters.
 */
export function localMetricsSource(metrics: RequestMetrics | undefined): MetricsSource {
  return (format) => {
    const snapshot: MetricsSnapshot = metrics?.counters.snapshot() ?? { counters: [], histograms: [] };
    const counts = connectionStats.counts();
    const counters = [...snapshot.counters, [F.connectionsAccepted.name, '', counts.accepted] as const, [F.connectionsHandled.name, '', counts.handled] as const];
    const gauges: GaugeSample[] = [
      [F.connectionsActive.name, '', counts.active],
      [F.connectionsReading.name, '', counts.reading],
      [F.connectionsWriting.name, '', counts.writing],
      [F.connectionsIdle.name, '', counts.waiting],
    ];
    return Promise.resolve(renderExposition({ snapshot: { counters, histograms: snapshot.histograms }, gauges }, format));
  };
}

/** The hitless_metrics directive. */
export const httpMetricsModule: ConfModule = {
  name: 'hitless_http_metrics_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'hitless_metrics',
      contexts: ['server', 'location'],
      args: [0],
      // As stub_status: a content handler, not inherited by the locations of a server.
      inherit: false,
      syntax: ';',
      summary:
        'Answers GET and HEAD with the Prometheus metrics (text format 0.0.4, or OpenMetrics 1.0 when Accept asks for application/openmetrics-text), summed over every worker by the master; other methods get 405. The same text as the admin API\'s GET /metrics, for a public scrape port: restrict it with allow/deny (docs/observability.md).',
      default: () => false,
      defaultText: '—',
      parse: () => true,
    }),
  ],
};
