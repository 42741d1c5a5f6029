/**
 * One probe request: send it, read the whole body, and say what happened. A request is a success
 * only when a complete response arrived; everything else is named, never retried, because a
 * retry would hide exactly the failure a continuity check exists to find.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionTracker } from './connection-tracker.js';

/**
 * How a request failed without a complete response. Any other error is counted under its own
 * code (`EPIPE`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...), or `error` when it has none.
 */
export type ProbeErrorKind = 'refused' | 'reset' | 'timeout' | 'truncated';

/** What one request ended with: a complete response, or an error (a ProbeErrorKind or a code). */
export type ProbeOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly latencyMs: number }
  | { readonly kind: 'error'; readonly error: string; readonly message: string };

/** Everything a request needs, resolved once per probe. */
export interface ProbeTarget {
  readonly url: URL;
  readonly method: string;
  readonly headers: http.OutgoingHttpHeaders;
  readonly timeoutMs: number;
  /** The keep-alive pool, or false for a fresh connection per request. */
  readonly agent: http.Agent | false;
  readonly ca: string | Buffer | undefined;
  readonly rejectUnauthorized: boolean;
}

/** Sends one request and resolves with its outcome; never rejects. */
export function sendProbeRequest(target: ProbeTarget, connections: ConnectionTracker): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    let timedOut = false;
    let responded = false;

    const options: https.RequestOptions = {
      method: target.method,
      headers: target.headers,
      agent: target.agent,
      rejectUnauthorized: target.rejectUnauthorized,
    };
    if (target.ca !== undefined) options.ca = target.ca;

    let request: http.ClientRequest;
    try {
      request = (target.url.protocol === 'https:' ? https : http).request(target.url, options);
    } catch (err) {
      // Options are validated up front; this only catches what Node refuses on its own. The
      // outcome waits for the next turn of the event loop, so that a worker failing this way
      // cannot spin on microtasks and starve the timers and the abort signal.
      const outcome = classifyFailure(err, { timedOut, responded }, target.timeoutMs);
      setImmediate(() => resolve(outcome));
      return;
    }

    // The deadline covers the whole exchange, connect to last body byte: a response whose
    // body stalls is as lost to the client as one that never starts.
    const timer = setTimeout(() => {
      timedOut = true;
      request.destroy(new Error(`No complete response within ${target.timeoutMs}ms`));
    }, target.timeoutMs);
    const settle = (outcome: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const fail = (err: unknown): void => settle(classifyFailure(err, { timedOut, responded }, target.timeoutMs));

    request.on('socket', (socket: Socket) => connections.track(socket));
    request.on('error', fail);
    request.on('response', (response) => {
      responded = true;
      response.on('error', fail);
      // Only a complete message counts: Content-Length or the last chunk received in full.
      const finish = (): void => {
        if (response.complete) {
          settle({ kind: 'response', status: response.statusCode ?? 0, latencyMs: performance.now() - started });
        } else {
          fail(new Error('connection closed before the end of the body'));
        }
      };
      // A body that ends early makes Node emit 'error' (ECONNRESET, "aborted"); 'close' covers
      // any path that emits neither that nor 'end'.
      response.on('end', finish);
      response.on('close', finish);
      response.resume();
    });
    request.end();
  });
}

function classifyFailure(
  err: unknown,
  state: { timedOut: boolean; responded: boolean },
  timeoutMs: number,
): ProbeOutcome {
  const message = err instanceof Error ? err.message : String(err);
  if (state.timedOut) return { kind: 'error', error: 'timeout', message: `No complete response within ${timeoutMs}ms` };
  if (state.responded) return { kind: 'error', error: 'truncated', message: `Response body cut short: ${message}` };
  const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  switch (code) {
    case 'ECONNREFUSED':
      return { kind: 'error', error: 'refused', message };
    // "socket hang up" is ECONNRESET too: the server closed a connection, pooled or new,
    // after the request was written and before any response. That is the keep-alive race a
    // draining server must avoid, so it is counted, not retried.
    case 'ECONNRESET':
      return { kind: 'error', error: 'reset', message };
    case 'ETIMEDOUT':
      return { kind: 'error', error: 'timeout', message };
    default:
      return { kind: 'error', error: code ?? 'error', message };
  }
}
