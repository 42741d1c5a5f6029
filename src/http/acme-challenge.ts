/**
 * nginx-acme's http-01 responder (src/acme/solvers/http.rs): a handler of the post-read phase, so
 * that no server's rewrite, location or access rule stands in its way, on every http server. A GET
 * of `/.well-known/acme-challenge/TOKEN` for a token the master presents is answered `200
 * text/plain` with the key authorization (RFC 8555 section 8.3) and the connection is closed; any
 * other request, an unknown token included, goes on as if there were no ACME at all.
 */
import type { AcmeChallenges } from '../tls/acme-challenges.js';
import type { HttpRequest } from './request.js';

/** The path prefix of RFC 8555 section 8.3. */
const WELL_KNOWN = '/.well-known/acme-challenge/';

/** The answer to an http-01 validation request. */
export interface AcmeChallengeAnswer {
  readonly status: 200;
  /** The key authorization. */
  readonly body: string;
  readonly type: 'text/plain';
  /** nginx-acme adds `Connection: close`. */
  readonly close: true;
}

/** The answer to `request` when it fetches a presented token (its normalized URI, as nginx-acme's `r.path()`); else undefined. */
export function acmeChallengeAnswer(request: HttpRequest, challenges: AcmeChallenges): AcmeChallengeAnswer | undefined {
  // Only GET: nginx-acme declines HEAD and every other method.
  if (request.head.method !== 'GET' || !request.uri.startsWith(WELL_KNOWN)) return undefined;
  const keyAuthorization = challenges.keyAuthorization(request.uri.slice(WELL_KNOWN.length));
  if (keyAuthorization === undefined) return undefined;
  return { status: 200, body: keyAuthorization, type: 'text/plain', close: true };
}
