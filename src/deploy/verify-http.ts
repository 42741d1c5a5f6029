/**
 * The health check of a configuration deploy: GET each URL on a new connection and expect a 2xx,
 * retrying with backoff while the reloaded server settles.
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeployError } from './deploy-error.js';

/** What one request showed. */
export interface HealthCheck {
  readonly url: string;
  readonly ok: boolean;
  readonly status?: number;
  readonly error?: string;
  readonly attempt: number;
}

/** Options of {@link checkHealth}. */
export interface HealthOptions {
  /** Rounds before giving up; default 5. */
  readonly attempts?: number | undefined;
  /** Deadline of one request, in ms; default 5000. */
  readonly timeoutMs?: number | undefined;
  /** First pause between rounds, doubled each round up to 2 s; default 200. */
  readonly backoffMs?: number | undefined;
  /** Trust anchors for https:// URLs, PEM; default Node's. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[] | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Called after each round with its results. */
  readonly onAttempt?: ((attempt: number, checks: readonly HealthCheck[]) => void) | undefined;
}

/** Requests every URL until each answers 2xx; throws HITLESS_ERR_DEPLOY_VERIFY otherwise. */
export async function checkHealth(urls: readonly string[], options: HealthOptions = {}): Promise<HealthCheck[]> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const latest = new Map<string, HealthCheck>();
  let pending = [...new Set(urls)];
  for (let attempt = 1; pending.length > 0 && attempt <= attempts; attempt++) {
    if (attempt > 1) await sleep(Math.min(2000, (options.backoffMs ?? 200) * 2 ** (attempt - 2)), undefined, { signal: options.signal });
    const round = await Promise.all(pending.map((url) => requestOnce(url, options, attempt)));
    for (const check of round) latest.set(check.url, check);
    options.onAttempt?.(attempt, round);
    pending = pending.filter((url) => latest.get(url)?.ok !== true);
  }
  const results = [...latest.values()];
  const failed = results.filter((check) => !check.ok);
  if (failed.length > 0) {
    const lines = failed.map((check) => `${check.url}: ${check.error ?? `status ${check.status ?? '?'}`}`);
    throw new DeployError('HITLESS_ERR_DEPLOY_VERIFY', `Health check failed after ${attempts} attempts:\n  ${lines.join('\n  ')}`);
  }
  return results;
}

function requestOnce(url: string, options: HealthOptions, attempt: number): Promise<HealthCheck> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (check: HealthCheck): void => {
      if (settled) return;
      settled = true;
      resolve(check);
    };
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      finish({ url, ok: false, error: 'not a URL', attempt });
      return;
    }
    const transport = parsed.protocol === 'https:' ? https : http;
    const request = transport.get(
      parsed,
      {
        agent: false,
        timeout: options.timeoutMs ?? 5000,
        headers: { connection: 'close' },
        ...(options.ca === undefined ? {} : { ca: options.ca as string | string[] }),
      },
      (response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        response.once('end', () => {
          const ok = status >= 200 && status < 300;
          finish(ok ? { url, ok, status, attempt } : { url, ok, status, error: `status ${status}`, attempt });
        });
        response.once('error', (err) => finish({ url, ok: false, status, error: err.message, attempt }));
      },
    );
    request.once('timeout', () => request.destroy(new Error(`no response within ${options.timeoutMs ?? 5000} ms`)));
    request.once('error', (err) => finish({ url, ok: false, error: err.message, attempt }));
  });
}
