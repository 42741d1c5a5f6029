/**
 * The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0, written from a snapshot of
 * counters and histograms and the gauges read at scrape time. The families are written in the
 * order of {@link METRIC_FAMILIES}, each once with its HELP and TYPE, as both formats require.
 */
import { METRIC_FAMILIES, type MetricFamily } from './metric-families.js';
import type { GaugeSample, MetricsSnapshot } from './metric-counters.js';

/** Which text format a scrape gets. */
export type ExpositionFormat = 'prometheus' | 'openmetrics';

/** The Content-Type of each format. */
export const EXPOSITION_CONTENT_TYPES: Readonly<Record<ExpositionFormat, string>> = {
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** OpenMetrics when the Accept header names application/openmetrics-text with a q above 0, as Prometheus sends it; else the 0.0.4 text format. */
export function formatOfAccept(accept: string | undefined): ExpositionFormat {
  for (const range of (accept ?? '').split(',')) {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    if (type !== 'application/openmetrics-text') continue;
    const q = params.find((param) => param.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return 'openmetrics';
  }
  return 'prometheus';
}

/** What one scrape writes. */
export interface ExpositionInput {
  readonly snapshot: MetricsSnapshot;
  readonly gauges: readonly GaugeSample[];
}

/** The exposition text of `input` in `format`. */
export function renderExposition(input: ExpositionInput, format: ExpositionFormat): string {
  const lines = new Map<string, string[]>();
  const push = (family: string, line: string): void => {
    const list = lines.get(family);
    if (list === undefined) lines.set(family, [line]);
    else list.push(line);
  };
  const families = new Map<string, MetricFamily>(Object.values(METRIC_FAMILIES).map((family) => [family.name, family]));
  for (const [family, labels, value] of input.snapshot.counters) push(family, `${family}_total${braces(labels)} ${number(value)}`);
  for (const [family, labels, value] of input.gauges) push(family, `${family}${braces(labels)} ${number(value)}`);
  for (const [family, labels, buckets, sum, count] of input.snapshot.histograms) {
    const bounds = families.get(family)?.buckets ?? [];
    let cumulative = 0;
    buckets.forEach((n, i) => {
      cumulative += n;
      const bound = bounds[i];
      const le = bound === undefined ? '+Inf' : format === 'openmetrics' ? openMetricsFloat(bound) : String(bound);
      push(family, `${family}_bucket{${labels === '' ? '' : `${labels},`}le="${le}"} ${cumulative}`);
    });
    push(family, `${family}_sum${braces(labels)} ${number(sum / 1_000_000)}`);
    push(family, `${family}_count${braces(labels)} ${count}`);
  }
  let text = '';
  for (const family of families.values()) {
    const samples = lines.get(family.name);
    if (samples === undefined) continue;
    // 0.0.4 names a counter as its samples are named; OpenMetrics names the family, without `_total`.
    const name = family.type === 'counter' && format === 'prometheus' ? `${family.name}_total` : family.name;
    text += `# HELP ${name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${family.type}\n${samples.join('\n')}\n`;
  }
  return format === 'openmetrics' ? `${text}# EOF\n` : text;
}

function braces(labels: string): string {
  return labels === '' ? '' : `{${labels}}`;
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** OpenMetrics writes bucket bounds as floats: `1.0`, not `1`. */
function openMetricsFloat(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}
