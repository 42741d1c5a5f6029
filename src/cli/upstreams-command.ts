/**
 * `hitless upstreams [NAME] [--json] [--timeout MS]`: the command-line client of the admin API's
 * `GET /v1/upstreams`, a table of every peer's state (the master's health checks merged with
 * each worker's view), or the JSON as the API answers it.
 */
import { parseArgs } from 'node:util';
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, adminClientOf } from './admin-flags.js';
import { HitlessError, UsageError } from '../core/errors.js';
import type { UpstreamsReport } from '../upstream/upstream-report.js';

/** Where the command writes. */
export interface UpstreamsCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const USAGE = 'usage: hitless upstreams [NAME] [--json] [--timeout MS] [-c FILE] [-p DIR] [--socket PATH | --url URL --token-file FILE]\n';

const HELP =
  USAGE +
  '\n' +
  'Shows every peer of every upstream group of a running hitless, through its admin API: its\n' +
  'state (up, down, draining, full, unavailable by max_fails, unhealthy or checking by\n' +
  'health_check), active requests, requests, failures, and the active check\'s counts. Each\n' +
  'worker answers for itself; one that does not answer within --timeout is named.\n' +
  '\n' +
  '  NAME                   one group only\n' +
  '  --json                 the API\'s JSON answer\n' +
  '  --timeout MS           how long each worker may take to answer (default 1000)\n' +
  ADMIN_FLAGS_HELP +
  '\n' +
  'exit: 0 every peer up or draining, 3 a peer is out (down, unavailable, unhealthy, checking, full)\n' +
  '      or a worker did not answer, 1 failed, 2 bad usage\n';

const OPTIONS = {
  ...ADMIN_FLAGS,
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs `hitless upstreams ...` and returns the exit status. */
export async function upstreamsCommand(argv: readonly string[], io: UpstreamsCommandIo): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr.write(`hitless upstreams: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.stdout.write(HELP);
    return 0;
  }
  try {
    if (positionals.length > 1) throw new UsageError('at most one group name');
    const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= 10_000)) {
      throw new UsageError(`invalid --timeout "${values.timeout ?? ''}": 1 to 10000 ms`);
    }
    const client = adminClientOf(values);
    const report = await client.upstreams(timeoutMs === undefined ? {} : { timeoutMs });
    const name = positionals[0];
    const upstreams = name === undefined ? report.upstreams : report.upstreams.filter((group) => group.name === name);
    if (name !== undefined && upstreams.length === 0) throw new HitlessError('HITLESS_ERR_ADMIN', `No upstream "${name}"`);
    const shown: UpstreamsReport = { ...report, upstreams };
    io.stdout.write(values.json === true ? `${JSON.stringify(shown, null, 2)}\n` : formatReport(shown));
    const out = upstreams.some((group) => group.peers.some((peer) => peer.state !== 'up' && peer.state !== 'draining'));
    return out || report.workers.some((worker) => !worker.answered) ? 3 : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`hitless upstreams: ${err.message}\n${USAGE}`);
      return 2;
    }
    if (err instanceof HitlessError) {
      io.stderr.write(`hitless upstreams: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** The report as a table per group, then the workers that did not answer. */
export function formatReport(report: UpstreamsReport): string {
  const lines: string[] = [];
  for (const group of report.upstreams) {
    lines.push(`upstream ${group.name} (${group.method ?? 'unknown method'}${group.zone ? ', zone' : ''}${group.implicit ? ', implicit' : ''})`);
    const rows = [['PEER', 'STATE', 'ACTIVE', 'REQUESTS', 'FAILS', 'UNAVAIL', 'CHECK']];
    for (const peer of group.peers) {
      const check = peer.health === null ? '-' : `${peer.health.state} ${peer.health.checks} checks${peer.health.lastError === null ? '' : `: ${peer.health.lastError}`}`;
      const flags = `${peer.backup ? ' backup' : ''}${peer.drain ? ' drain' : ''}`;
      rows.push([`${peer.peer}${flags}`, peer.state, String(peer.active), String(peer.requests), `${peer.fails}/${peer.maxFails}`, String(peer.unavail), check]);
    }
    const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
    for (const row of rows) lines.push(`  ${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')}`);
  }
  const answered = report.workers.filter((worker) => worker.answered).length;
  lines.push(`generation ${report.generation}: ${answered} of ${report.workers.length} workers answered`);
  for (const worker of report.workers) if (!worker.answered) lines.push(`  worker ${worker.pid}: ${worker.error}`);
  return `${lines.join('\n')}\n`;
}
