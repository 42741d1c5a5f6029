/**
 * When an ACME certificate is renewed and when a failed attempt is retried: pure functions of the
 * certificate's dates, the CA's renewal window (RFC 9773) and a random number, so that the manager
 * and its tests share one rule.
 */

/** A failure is retried after this long first, then twice as long each time. */
export const BACKOFF_BASE_MS = 60_000;
/** Retries are never further apart than this. */
export const BACKOFF_CAP_MS = 6 * 60 * 60_000;
/** Nor closer than this, whatever the certificate's lifetime: there is never a tight loop. */
export const BACKOFF_FLOOR_MS = 1_000;
/** A certificate this close to its expiry, with its renewal overdue, logs an [alert] ... */
export const EXPIRY_ALERT_MS = 7 * 24 * 60 * 60_000;
/** ... this often. */
export const EXPIRY_ALERT_EVERY_MS = 60 * 60_000;
/** A Retry-After longer than this is not waited for (a CA's answer must not park a name for weeks). */
export const RETRY_AFTER_CAP_MS = 24 * 60 * 60_000;
/** The longest a Node timer can wait (setTimeout's limit, 2^31 - 1 ms); longer waits are re-armed. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The renewal time by the certificate's lifetime: a random point in the last third, drawn from that
 * third's first half (between 2/3 and 5/6 of the lifetime), so that the second half is left for
 * retries after a failure. This is Caddy's and nginx-acme's "renew with a third left", spread so
 * that many certificates issued together are not renewed together.
 */
export function lifetimeRenewalTime(notBefore: number, notAfter: number, random: number): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  return notBefore + (lifetime * 2) / 3 + (lifetime / 6) * clampUnit(random);
}

/**
 * The renewal time inside the CA's suggested window (RFC 9773 section 4.2: "a uniform random
 * point"); a window already open gives a point between now and its end.
 */
export function windowRenewalTime(start: number, end: number, now: number, random: number): number {
  const from = Math.max(start, now);
  if (end <= from) return now;
  return from + (end - from) * clampUnit(random);
}

/**
 * How long to wait after the `failures`-th failure in a row (1 for the first): 1 minute doubling
 * up to 6 hours. A certificate with a short lifetime starts lower, at a hundredth of its lifetime
 * (never below 1 s), so that a certificate living hours gets more than one retry; a Retry-After
 * from the CA (RFC 8555 section 6.6) is honoured when longer, up to a day.
 */
export function backoffMs(failures: number, lifetimeMs: number | undefined, retryAfterMs?: number): number {
  const base = lifetimeMs === undefined ? BACKOFF_BASE_MS : Math.max(BACKOFF_FLOOR_MS, Math.min(BACKOFF_BASE_MS, lifetimeMs / 100));
  const exponent = Math.min(Math.max(0, failures - 1), 30);
  const delay = Math.min(BACKOFF_CAP_MS, base * 2 ** exponent);
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs)) return delay;
  return Math.max(delay, Math.min(RETRY_AFTER_CAP_MS, retryAfterMs));
}

function clampUnit(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0.5;
}
