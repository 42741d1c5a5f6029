/**
 * The continuity check: keep requests flowing to a URL while something changes behind it (a
 * reload, a binary upgrade, a certificate deploy) and count every request that did not get a
 * complete 2xx response. `hitless probe` is a thin layer over runProbe; the process tests call
 * runProbe directly to prove that reloads lose nothing.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../core/errors.js';
import { ConnectionTracker } from './connection-tracker.js';
import { ProbeTally, type ProbeReport, type ProbeStopReason } from './probe-report.js';
import { sendProbeRequest, type ProbeTarget } from './probe-request.js';

export type { ProbeReport, ProbeFailure, ProbeStopReason } from './probe-report.js';
export type { ProbeErrorKind } from './probe-request.js';
export type { LatencyPercentiles } from './latency-histogram.js';
export { formatProbeReport, probeSucceeded } from './format-report.js';

/** What to probe and how; only `url` is required. */
export interface ProbeOptions {
  /** The http:// or https:// URL to request. */
  readonly url: string | URL;
  /**
   * How long to keep starting requests, in milliseconds; requests in flight at the deadline are
   * awaited and counted. Default 30000, or no limit when `requests` is set. `Infinity` runs until
   * the request budget is spent or the signal aborts.
   */
  readonly durationMs?: number | undefined;
  /** Requests kept in flight at once, and the size of the keep-alive pool; default 50. */
  readonly concurrency?: number | undefined;
  /** Open a new connection (`Connection: close`) for every request instead of keep-alive; default false. */
  readonly newConnections?: boolean | undefined;
  /** Stop after this many requests in total; default no limit. */
  readonly requests?: number | undefined;
  /** Deadline for one complete response, from connect to the last body byte, in milliseconds; default 5000. */
  readonly timeoutMs?: number | undefined;
  /** Request headers added to every request (a `Host` header also sets the TLS server name); default none. */
  readonly headers?: Readonly<Record<string, string | readonly string[]>> | undefined;
  /** Request method; default `GET`. */
  readonly method?: string | undefined;
  /** CA certificates (PEM) trusted for https:// instead of Node's bundle; default Node's bundle. */
  readonly ca?: string | Buffer | undefined;
  /** Verify the certificate of an https:// server; default true. */
  readonly rejectUnauthorized?: boolean | undefined;
}

/** Defaults of ProbeOptions, as `hitless probe` documents them. */
export const PROBE_DEFAULTS = Object.freeze({
  durationMs: 30_000,
  concurrency: 50,
  timeoutMs: 5_000,
  method: 'GET',
});

/** The longest delay setTimeout honours; a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface ResolvedProbeOptions {
  readonly url: URL;
  readonly durationMs: number;
  readonly concurrency: number;
  readonly newConnections: boolean;
  readonly requests: number | undefined;
  readonly timeoutMs: number;
  readonly headers: http.OutgoingHttpHeaders;
  readonly method: string;
  readonly ca: string | Buffer | undefined;
  readonly rejectUnauthorized: boolean;
}

/**
 * Sends requests to `options.url`, `concurrency` at a time, until the duration elapses, the
 * request budget is spent or `signal` aborts, then resolves with the report. Stopping never
 * abandons a request: those in flight are awaited (each bounded by `timeoutMs`) and counted, and
 * every socket the probe opened is closed before the promise resolves. An abort is a normal stop
 * and resolves too. Rejects only with a UsageError, for options that cannot work.
 */
export async function runProbe(options: ProbeOptions, signal?: AbortSignal): Promise<ProbeReport> {
  const resolved = resolveProbeOptions(options);
  const { url, concurrency, newConnections, requests, durationMs } = resolved;
  const transport = url.protocol === 'https:' ? https : http;
  // maxSockets = concurrency: each worker holds at most one request, so the pool never queues
  // and never opens more connections than there are workers, unless the server closes some.
  const agent = newConnections
    ? false
    : new transport.Agent({
        keepAlive: true,
        maxSockets: concurrency,
        rejectUnauthorized: resolved.rejectUnauthorized,
        ...(resolved.ca === undefined ? {} : { ca: resolved.ca }),
      });
  const target: ProbeTarget = {
    url,
    method: resolved.method,
    headers: resolved.headers,
    timeoutMs: resolved.timeoutMs,
    agent,
    ca: resolved.ca,
    rejectUnauthorized: resolved.rejectUnauthorized,
  };
  const connections = new ConnectionTracker();
  const tally = new ProbeTally();
  const started = performance.now();
  let issued = 0;
  let stoppedBy: ProbeStopReason | undefined;

  // Checked before each request rather than on a timer: a stop only has to keep new requests
  // from starting, since the ones in flight are awaited anyway.
  const claim = (): boolean => {
    if (stoppedBy === undefined) {
      if (signal?.aborted) stoppedBy = 'signal';
      else if (requests !== undefined && issued >= requests) stoppedBy = 'requests';
      else if (performance.now() - started >= durationMs) stoppedBy = 'duration';
    }
    if (stoppedBy !== undefined) return false;
    issued += 1;
    return true;
  };
  const worker = async (): Promise<void> => {
    while (claim()) {
      const outcome = await sendProbeRequest(target, connections);
      tally.add(outcome, performance.now() - started);
    }
  };

  let elapsedMs: number;
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    elapsedMs = performance.now() - started;
  } finally {
    if (agent) agent.destroy();
    await connections.closeAll();
  }
  return tally.report({
    url: url.href,
    mode: newConnections ? 'new-connections' : 'keep-alive',
    concurrency,
    elapsedMs,
    connections: connections.connected,
    stoppedBy: stoppedBy ?? 'duration',
  });
}

/** Validates options and fills in defaults; throws UsageError naming the first bad option. */
function resolveProbeOptions(options: ProbeOptions): ResolvedProbeOptions {
  const url = parseProbeUrl(options.url);
  const requests = options.requests;
  if (requests !== undefined && !(Number.isSafeInteger(requests) && requests >= 1)) {
    throw invalid('requests', requests, 'a whole number of at least 1');
  }
  const durationMs = options.durationMs ?? (requests === undefined ? PROBE_DEFAULTS.durationMs : Infinity);
  if (!(durationMs > 0)) throw invalid('durationMs', durationMs, 'more than 0');
  const concurrency = options.concurrency ?? PROBE_DEFAULTS.concurrency;
  if (!(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
    throw invalid('concurrency', concurrency, 'a whole number of at least 1');
  }
  const timeoutMs = options.timeoutMs ?? PROBE_DEFAULTS.timeoutMs;
  if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
    throw invalid('timeoutMs', timeoutMs, `more than 0 and at most ${MAX_TIMER_MS}`);
  }
  const method = options.method ?? PROBE_DEFAULTS.method;
  // RFC 9110 section 9.1: a method is a token.
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) throw invalid('method', method, 'an HTTP token');
  const newConnections = options.newConnections ?? false;
  return {
    url,
    durationMs,
    concurrency,
    newConnections,
    requests,
    timeoutMs,
    headers: buildHeaders(options.headers ?? {}, newConnections),
    method,
    ca: options.ca,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  };
}

function parseProbeUrl(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch (err) {
    throw new UsageError(`Invalid probe URL "${String(input)}"`, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Invalid probe URL "${url.href}": the scheme must be http or https`);
  }
  return url;
}

function buildHeaders(
  headers: Readonly<Record<string, string | readonly string[]>>,
  newConnections: boolean,
): http.OutgoingHttpHeaders {
  const built: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    try {
      http.validateHeaderName(name);
      for (const item of typeof value === 'string' ? [value] : value) http.validateHeaderValue(name, item);
    } catch (err) {
      throw new UsageError(`Invalid probe header "${name}"`, { cause: err });
    }
    // A caller's Connection header would fight the mode; the mode decides.
    if (newConnections && name.toLowerCase() === 'connection') continue;
    built[name] = typeof value === 'string' ? value : [...value];
  }
  // Node already sends close with agent: false; stating it keeps the mode true to its name
  // even if that default changes, so that the server closes its side after every response.
  if (newConnections) built['Connection'] = 'close';
  return built;
}

function invalid(option: string, value: unknown, expected: string): UsageError {
  return new UsageError(`Invalid probe option "${option}": ${String(value)}: must be ${expected}`);
}
