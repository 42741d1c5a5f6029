/**
 * A probe report for people: one row per outcome, then rate, latency and a verdict. Programs
 * should read the ProbeReport itself (`hitless probe --json`), not this text.
 */
import type { ProbeReport } from './probe-report.js';

/** True when the probe proved continuity: at least one request, and none failed. */
export function probeSucceeded(report: ProbeReport): boolean {
  return report.total > 0 && report.failed === 0;
}

/** Formats a report as a short table ending with an `OK:` or `FAILED:` line, newline-terminated. */
export function formatProbeReport(report: ProbeReport): string {
  const rows: [string, string][] = [
    ...Object.entries(report.byStatus).map(([status, n]): [string, string] => [status, String(n)]),
    ...Object.entries(report.byError).map(([error, n]): [string, string] => [error, String(n)]),
  ];
  const width = Math.max(8, ...rows.map(([label]) => label.length)) + 2;
  const counts = Math.max(1, ...rows.map(([, n]) => n.length));
  const seconds = (report.elapsedMs / 1000).toFixed(2);
  const latency = report.latencyMs;
  const lines = [
    `probe ${report.url}: ${report.mode}, concurrency ${report.concurrency}`,
    ...rows.map(([label, n]) => `  ${label.padEnd(width)}${n.padStart(counts)}`),
    `  ${'total'.padEnd(width)}${String(report.total).padStart(counts)} in ${seconds} s, ` +
      `${report.requestsPerSecond.toFixed(1)} req/s, ${plural(report.connections, 'connection')}`,
    `  ${'latency'.padEnd(width)}` +
      (latency === null
        ? 'no complete response'
        : `p50 ${ms(latency.p50)}, p90 ${ms(latency.p90)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)}`),
  ];
  if (probeSucceeded(report)) {
    lines.push(`OK: ${plural(report.total, 'request')}, none failed`);
  } else if (report.total === 0) {
    lines.push('FAILED: no request was sent');
  } else {
    lines.push(`FAILED: ${report.failed} of ${plural(report.total, 'request')} failed`);
    for (const failure of report.firstFailures) {
      lines.push(`  +${(failure.atMs / 1000).toFixed(3)} s  ${failure.outcome}  ${failure.message}`);
    }
    const unlisted = report.failed - report.firstFailures.length;
    if (unlisted > 0) lines.push(`  ... and ${unlisted} more`);
  }
  return lines.join('\n') + '\n';
}

function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
