/**
 * ACME errors: an ACME server's problem document (RFC 8555 section 6.7, RFC 7807) as
 * {@link AcmeProblemError}, and everything else that stops an ACME exchange (an unreachable
 * directory, a malformed answer, a poll that ran out of time) as {@link AcmeError}.
 */
import { HitlessError } from '../core/errors.js';

/** The prefix of the ACME error types RFC 8555 section 6.7 registers. */
export const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

/** An ACME exchange that failed without a problem document from the server. */
export class AcmeError extends HitlessError {
  /** How long the server asked to wait before trying again (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: ErrorOptions & { retryAfterMs?: number | undefined }) {
    super('HITLESS_ERR_ACME', message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** One entry of a problem document's `subproblems` (RFC 8555 section 6.7.1). */
export interface AcmeSubproblem {
  readonly type: string;
  readonly detail: string;
  readonly identifier: string | undefined;
}

/** An ACME server's problem document: `problemType` is its `type` (urn:ietf:params:acme:error:...). */
export class AcmeProblemError extends AcmeError {
  /** The problem's `type`, e.g. `urn:ietf:params:acme:error:rateLimited`. */
  readonly problemType: string;
  /** The problem's `detail`, as the server wrote it ('' when it gave none). */
  readonly detail: string;
  /** The HTTP status of the answer that carried it, or the problem's own `status`; 0 when neither. */
  readonly status: number;
  /** `subproblems`, one per identifier, when the server gave them. */
  readonly subproblems: readonly AcmeSubproblem[];

  constructor(
    what: string,
    problem: { type: string; detail: string; status: number; subproblems?: readonly AcmeSubproblem[] },
    options?: ErrorOptions & { retryAfterMs?: number | undefined },
  ) {
    const sub = (problem.subproblems ?? []).map((s) => `; ${s.identifier ?? '?'}: ${s.type}: ${s.detail}`).join('');
    const status = problem.status === 0 ? '' : ` (${problem.status})`;
    super(`${what}: ${problem.type}${status}${problem.detail === '' ? '' : `: ${problem.detail}`}${sub}`, options);
    this.problemType = problem.type;
    this.detail = problem.detail;
    this.status = problem.status;
    this.subproblems = problem.subproblems ?? [];
  }
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Reads a problem document (a parsed JSON object) into an {@link AcmeProblemError}; `status` is
 * the HTTP status of its answer (0 for an error embedded in a challenge or an order).
 */
export function problemError(what: string, document: unknown, status: number, retryAfterMs?: number): AcmeProblemError {
  const object = typeof document === 'object' && document !== null ? (document as Record<string, unknown>) : {};
  const subproblems = Array.isArray(object.subproblems)
    ? object.subproblems.map((entry: unknown): AcmeSubproblem => {
        const sub = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>) : {};
        const identifier = typeof sub.identifier === 'object' && sub.identifier !== null ? text((sub.identifier as Record<string, unknown>).value) : undefined;
        return { type: text(sub.type) ?? 'about:blank', detail: text(sub.detail) ?? '', identifier };
      })
    : [];
  const ownStatus = typeof object.status === 'number' && Number.isInteger(object.status) ? object.status : 0;
  return new AcmeProblemError(
    what,
    { type: text(object.type) ?? 'about:blank', detail: text(object.detail) ?? '', status: status === 0 ? ownStatus : status, subproblems },
    { retryAfterMs },
  );
}

/**
 * Parses Retry-After (RFC 9110 section 10.2.3: delta-seconds or an HTTP-date) into milliseconds
 * from `now`; undefined when absent or unreadable. A date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
