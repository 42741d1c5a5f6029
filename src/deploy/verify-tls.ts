/**
 * Verification on the wire: connect to each endpoint with each deployed name as SNI, take the leaf
 * the server sends and compare it with the deployed one by SHA-256, and let OpenSSL build the
 * served chain up to a trust anchor. Every connection is a full handshake: no session is offered,
 * and one that was resumed anyway does not count, since a resumed session carries no certificate.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { DeployError } from './deploy-error.js';
import type { Endpoint } from './targets/target.js';

/** What one handshake showed. */
export interface TlsCheck {
  readonly host: string;
  readonly port: number;
  /** The SNI name sent. */
  readonly servername: string;
  /** True when the served leaf is the expected one (and, if required, the chain is trusted). */
  readonly ok: boolean;
  /** SHA-256 of the served leaf, as colon-separated hex. */
  readonly servedSha256?: string;
  /** True when the served chain leads to a trust anchor. */
  readonly trusted?: boolean;
  /** OpenSSL's reason when it does not (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`). */
  readonly trustError?: string;
  readonly protocol?: string;
  /** Always false for a check that counts; reported to prove it. */
  readonly sessionReused?: boolean;
  /** Why the check failed, in words. */
  readonly error?: string;
  /** Which attempt this result came from (1-based). */
  readonly attempt: number;
}

/** Options of {@link verifyServedCertificate}. */
export interface TlsVerifyOptions {
  /** SHA-256 fingerprint the served leaf must have (X509Certificate.fingerprint256). */
  readonly expectedSha256: string;
  /** Require the served chain to reach a trust anchor; default true. */
  readonly requireTrusted?: boolean | undefined;
  /** Trust anchors, PEM; default {@link systemTrustAnchors}. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[] | undefined;
  /** Rounds of checks before giving up; default 5. */
  readonly attempts?: number | undefined;
  /** Deadline of one handshake, in ms; default 5000. */
  readonly timeoutMs?: number | undefined;
  /**
   * Consecutive rounds each pair must pass; default 2. One good handshake does not prove that every
   * process of the server serves the new certificate: after SIGHUP nginx starts new workers and
   * only then retires the old ones, which accept meanwhile.
   */
  readonly confirmations?: number | undefined;
  /** First pause between rounds, doubled each round up to 2 s; default 200. */
  readonly backoffMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Called after each round with its results. */
  readonly onAttempt?: ((attempt: number, checks: readonly TlsCheck[]) => void) | undefined;
}

/** Where distributions keep the system's trust store, as OpenSSL would look for it. */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem', '/usr/local/etc/openssl/cert.pem'];

/** The system trust store (SSL_CERT_FILE, then the usual bundle paths), else Node's own roots. */
export function systemTrustAnchors(): string | readonly string[] {
  const candidates = [process.env['SSL_CERT_FILE'], ...SYSTEM_BUNDLES].filter((p): p is string => p !== undefined && p !== '');
  for (const path of candidates) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      // Try the next place.
    }
  }
  return tls.rootCertificates;
}

/**
 * Checks every endpoint × name in rounds with backoff until each pair passed `confirmations`
 * rounds in a row, or the attempts run out; then throws HITLESS_ERR_DEPLOY_VERIFY naming each
 * failure. Returns the last result of every pair.
 */
export async function verifyServedCertificate(endpoints: readonly Endpoint[], names: readonly string[], options: TlsVerifyOptions): Promise<TlsCheck[]> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const confirmations = Math.min(attempts, Math.max(1, options.confirmations ?? 2));
  const streak = new Map<number, number>();
  const context = tls.createSecureContext({ ca: (options.ca ?? systemTrustAnchors()) as string | string[] });
  const pairs = endpoints.flatMap((endpoint) => names.map((servername) => ({ endpoint, servername })));
  const latest = new Map<number, TlsCheck>();
  let pending = pairs.map((_, index) => index);
  let rounds = 0;
  for (let attempt = 1; pending.length > 0 && attempt <= attempts; attempt++) {
    rounds = attempt;
    if (attempt > 1) await sleep(Math.min(2000, (options.backoffMs ?? 200) * 2 ** (attempt - 2)), undefined, { signal: options.signal });
    const round = await Promise.all(
      pending.map(async (index) => {
        const { endpoint, servername } = pairs[index] as (typeof pairs)[number];
        const check = await checkOnce(endpoint, servername, context, options, attempt);
        latest.set(index, check);
        return check;
      }),
    );
    options.onAttempt?.(attempt, round);
    for (const index of pending) streak.set(index, latest.get(index)?.ok === true ? (streak.get(index) ?? 0) + 1 : 0);
    pending = pending.filter((index) => (streak.get(index) ?? 0) < confirmations);
    // Rounds left cannot make up the streak some pair still needs: stop early.
    if (pending.some((index) => confirmations - (streak.get(index) ?? 0) > attempts - attempt)) break;
  }
  const results = pairs.map((_, index) => latest.get(index) as TlsCheck);
  const failed = pending.map((index) => latest.get(index) as TlsCheck);
  if (failed.length > 0) {
    const lines = failed.map(
      (check) => `${formatEndpoint(check)} (SNI "${check.servername}"): ${check.error ?? `passed, but not ${confirmations} rounds in a row: another certificate was served in between`}`,
    );
    throw new DeployError('HITLESS_ERR_DEPLOY_VERIFY', `Verification failed after ${rounds} rounds:\n  ${lines.join('\n  ')}`);
  }
  return results;
}

/** `127.0.0.1:443` or `[::1]:443`. */
export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** One fresh handshake and what it showed; never throws. */
export function checkOnce(endpoint: Endpoint, servername: string, context: tls.SecureContext, options: TlsVerifyOptions, attempt: number): Promise<TlsCheck> {
  const base = { host: endpoint.host, port: endpoint.port, servername, attempt };
  return new Promise((resolve) => {
    let settled = false;
    const socket = tls.connect({
      host: endpoint.host,
      port: endpoint.port,
      servername,
      secureContext: context,
      // The chain is judged below from socket.authorized; the name was judged in preflight and the
      // leaf is compared byte for byte, so the connection itself must not fail on either.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      timeout: options.timeoutMs ?? 5000,
    });
    const finish = (check: TlsCheck): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(check);
    };
    socket.once('timeout', () => finish({ ...base, ok: false, error: `no handshake within ${options.timeoutMs ?? 5000} ms` }));
    socket.once('error', (err) => finish({ ...base, ok: false, error: err.message }));
    socket.once('secureConnect', () => {
      const leaf = socket.getPeerX509Certificate();
      const sessionReused = socket.isSessionReused();
      const trusted = socket.authorized;
      const trustError = socket.authorizationError === null ? undefined : String(socket.authorizationError);
      const servedSha256 = leaf?.fingerprint256;
      const facts = {
        ...base,
        ...(servedSha256 === undefined ? {} : { servedSha256 }),
        trusted,
        ...(trustError === undefined ? {} : { trustError }),
        protocol: socket.getProtocol() ?? 'unknown',
        sessionReused,
      };
      let error: string | undefined;
      if (sessionReused) error = 'the session was resumed: no certificate was sent';
      else if (servedSha256 === undefined) error = 'the server sent no certificate';
      else if (servedSha256 !== options.expectedSha256) error = `serves another certificate (SHA-256 ${servedSha256})`;
      else if ((options.requireTrusted ?? true) && !trusted) error = `the served chain does not lead to a trust anchor: ${trustError ?? 'untrusted'}`;
      finish(error === undefined ? { ...facts, ok: true } : { ...facts, ok: false, error });
    });
  });
}
