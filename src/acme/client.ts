/**
 * The ACME protocol (RFC 8555) on node:crypto and node:https: the directory, a nonce pool,
 * accounts (with external account binding), orders authorized by http-01, tls-alpn-01 or dns-01,
 * finalize with a CSR and download of the chain, and ACME Renewal Information (RFC 9773).
 * No configuration: the caller (src/acme/manager.ts) says which issuer, key and names.
 *
 * Every wait is bounded in count and time and ends on the caller's AbortSignal; private keys and
 * the EAB MAC key never reach an error message.
 */
import type { LookupFunction } from 'node:net';
import { createHash, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { VERSION } from '../core/version.js';
import { certificateIdentifier, createCertificateRequest } from './certificate-request.js';
import { base64url, externalAccountBinding, jwkThumbprint, publicJwk, signJws, type PublicJwk } from './jws.js';
import { ACME_ERROR_PREFIX, AcmeError, AcmeProblemError, parseRetryAfter, problemError } from './problem.js';
import { AcmeTransport, type AcmeResponse } from './transport.js';

export { certificateIdentifier } from './certificate-request.js';
export { AcmeError, AcmeProblemError } from './problem.js';

/** Options of {@link AcmeClient}. */
export interface AcmeClientOptions {
  /** The issuer's directory URL (https). */
  directoryUrl: string;
  /** The account key: ECDSA P-256 (ES256), P-384 (ES384) or RSA of 2048 bits or more (RS256). */
  accountKey: KeyObject;
  /** PEM certificates trusted for the ACME server instead of Node's roots (nginx-acme's ssl_trusted_certificate). */
  ca?: string;
  /** Verify the ACME server's certificate. Default true. */
  verify?: boolean;
  /** Time limit of one HTTP exchange. Default 30 s. */
  timeoutMs?: number;
  /** The User-Agent header. Default `hitless/VERSION`. */
  userAgent?: string;
  /** Time limit of one poll of an authorization or an order. Default 5 minutes. */
  pollTimeoutMs?: number;
  /** Resolves the ACME server's name (nginx-acme's http `resolver`). Default the system's resolver. */
  lookup?: LookupFunction;
}

/** A challenge to make answerable before the ACME server is asked to validate it. */
export interface PendingChallenge {
  readonly type: 'http-01' | 'tls-alpn-01' | 'dns-01';
  /** The identifier's value: a DNS name (without `*.` for a wildcard) or an IP address. */
  readonly identifier: string;
  readonly token: string;
  /** token "." base64url(JWK thumbprint) (RFC 8555 section 8.1). */
  readonly keyAuthorization: string;
  /** The TXT value of dns-01: base64url(sha256(keyAuthorization)). */
  readonly dnsValue: string;
}

/** Options of {@link AcmeClient.issue}. */
export interface IssueOptions {
  /** The names on the certificate: DNS names or IP addresses; the first is the subject's CN. */
  names: readonly string[];
  /** The certificate's key (ECDSA P-256 / P-384 or RSA); it signs the CSR. */
  certificateKey: KeyObject;
  challenge: PendingChallenge['type'];
  /** The ARI certificate identifier of the certificate this one replaces (sent only when the directory has renewalInfo). */
  replaces?: string;
  /** Makes the challenge answerable (token table, challenge certificate, DNS record). */
  present(challenge: PendingChallenge): Promise<void>;
  /** Undoes `present`; called for every presented challenge, also on failure. */
  cleanup(challenge: PendingChallenge): Promise<void>;
  signal?: AbortSignal;
}

/** The suggested renewal window of RFC 9773 section 4.2. */
export interface RenewalWindow {
  start: Date;
  end: Date;
  /** When to ask again (Retry-After), when the server said. */
  retryAfterMs?: number;
  explanationUrl?: string;
}

/** The directory object (RFC 8555 section 7.1.1), the members this client uses. */
interface Directory {
  readonly newNonce: string;
  readonly newAccount: string;
  readonly newOrder: string;
  readonly renewalInfo: string | undefined;
  readonly externalAccountRequired: boolean;
}

type Json = Record<string, unknown>;

/** badNonce answers retried per request (RFC 8555 section 6.5); each retry uses the nonce the rejection carried. */
const MAX_BAD_NONCE_RETRIES = 16;
/** Replay-Nonce values kept for later requests. */
const NONCE_POOL_SIZE = 16;
/** Polls of one authorization or order, at most. */
const MAX_POLLS = 120;
const DEFAULT_POLL_TIMEOUT_MS = 5 * 60_000;
const FIRST_POLL_DELAY_MS = 250;
const MAX_POLL_DELAY_MS = 5_000;

function string(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function isProblem(res: AcmeResponse): boolean {
  return (res.headers['content-type'] ?? '').toLowerCase().startsWith('application/problem+json');
}

function parseJson(what: string, res: AcmeResponse): Json {
  let value: unknown;
  try {
    value = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new AcmeError(`${what}: the answer (status ${res.status}) is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AcmeError(`${what}: the answer (status ${res.status}) is not a JSON object`);
  return value as Json;
}

/** Throws the problem document, or an AcmeError, unless the status is one of `expected`. */
function expectStatus(what: string, url: string, res: AcmeResponse, expected: readonly number[]): void {
  if (expected.includes(res.status)) return;
  const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  if (isProblem(res)) {
    let document: unknown;
    try {
      document = JSON.parse(res.body.toString('utf8'));
    } catch {
      document = undefined;
    }
    if (document !== undefined) throw problemError(what, document, res.status, retryAfterMs);
  }
  throw new AcmeError(`${what}: unexpected status ${res.status} from "${url}"`, { retryAfterMs });
}

/** Resolves after `ms`, or rejects with an AcmeError as soon as `signal` aborts. */
function delay(what: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new AcmeError(`${what}: aborted`, { cause: signal.reason }));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AcmeError(`${what}: aborted`, { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error an invalid authorization or order carries, or a generic one. */
function objectError(what: string, object: Json, fallback: string): AcmeError {
  const challenges = Array.isArray(object.challenges) ? (object.challenges as unknown[]) : [];
  for (const challenge of challenges) {
    const error = typeof challenge === 'object' && challenge !== null ? (challenge as Json).error : undefined;
    if (error !== undefined) return problemError(what, error, 0);
  }
  if (object.error !== undefined) return problemError(what, object.error, 0);
  return new AcmeError(`${what}: ${fallback}`);
}

/** The most redirects a GET follows (nginx-acme's MAX_REDIRECTS). */
const MAX_REDIRECTS = 10;

/** An ACME client for one account key at one directory. */
export class AcmeClient {
  readonly #directoryUrl: string;
  readonly #key: KeyObject;
  readonly #jwk: PublicJwk;
  readonly #thumbprint: string;
  readonly #transport: AcmeTransport;
  readonly #pollTimeoutMs: number;
  #directory: Promise<Directory> | undefined;
  #nonces: string[] = [];
  #accountUrl: string | undefined;

  constructor(options: AcmeClientOptions) {
    this.#directoryUrl = options.directoryUrl;
    this.#key = options.accountKey;
    this.#jwk = publicJwk(options.accountKey);
    this.#thumbprint = jwkThumbprint(this.#jwk);
    this.#pollTimeoutMs = options.pollTimeoutMs ?? DEFAULT_POLL_TIMEOUT_MS;
    this.#transport = new AcmeTransport({ ca: options.ca, verify: options.verify, timeoutMs: options.timeoutMs, userAgent: options.userAgent ?? `hitless/${VERSION}`, lookup: options.lookup });
  }

  /** The account URL (the `kid`), once {@link account} or an order found it. */
  get accountUrl(): string | undefined {
    return this.#accountUrl;
  }

  /** Closes kept-alive connections to the ACME server. The client stays usable. */
  close(): void {
    this.#transport.close();
  }

  /** Registers the account key, or finds its existing account (RFC 8555 section 7.3). */
  async account(options: { contact: readonly string[]; termsOfServiceAgreed: boolean; externalAccountBinding?: { kid: string; hmacKey: Buffer } }, signal?: AbortSignal): Promise<{ url: string }> {
    const directory = await this.#getDirectory(signal);
    const payload: Json = { contact: [...options.contact], termsOfServiceAgreed: options.termsOfServiceAgreed };
    if (options.externalAccountBinding !== undefined) {
      const { kid, hmacKey } = options.externalAccountBinding;
      payload.externalAccountBinding = externalAccountBinding(this.#jwk, kid, hmacKey, directory.newAccount);
    } else if (directory.externalAccountRequired) {
      throw new AcmeError(`ACME new account at "${this.#directoryUrl}": the server requires an external account binding and none is configured`);
    }
    return { url: await this.#newAccount('ACME new account', directory, payload, signal) };
  }

  /** Orders a certificate for `names`, answers its challenges, finalizes it and returns the chain. */
  async issue(options: IssueOptions): Promise<{ certificate: string; orderUrl: string }> {
    const { names, signal } = options;
    if (names.length === 0) throw new AcmeError('ACME new order: no names');
    const directory = await this.#getDirectory(signal);
    if (this.#accountUrl === undefined) {
      await this.#newAccount('ACME account lookup', directory, { onlyReturnExisting: true }, signal);
    }
    const identifiers = names.map((value) => ({ type: isIP(value) === 0 ? 'dns' : 'ip', value }));
    const replaces = directory.renewalInfo !== undefined ? options.replaces : undefined;
    let res: AcmeResponse;
    try {
      res = await this.#post('ACME new order', directory.newOrder, { identifiers, ...(replaces !== undefined ? { replaces } : {}) }, [201], signal);
    } catch (err) {
      // RFC 9773 section 5: the replaced certificate was renewed already; a plain order still works.
      if (!(err instanceof AcmeProblemError) || err.problemType !== `${ACME_ERROR_PREFIX}alreadyReplaced` || replaces === undefined) throw err;
      res = await this.#post('ACME new order', directory.newOrder, { identifiers }, [201], signal);
    }
    const orderUrl = this.#location('ACME new order', res);
    let order = parseJson('ACME new order', res);
    await this.#authorize(order, options);
    order = await this.#poll('ACME order', orderUrl, signal, (o) => (o.status === 'ready' || o.status === 'valid' ? true : o.status === 'pending' || o.status === 'processing' ? false : `the order is "${String(o.status)}"`));
    if (order.status === 'ready') {
      const finalize = string(order.finalize);
      if (finalize === undefined) throw new AcmeError('ACME order: no finalize URL');
      const csr = await createCertificateRequest(names, options.certificateKey);
      order = parseJson('ACME finalize', await this.#post('ACME finalize', finalize, { csr: base64url(csr) }, [200], signal));
      if (order.status !== 'valid') {
        order = await this.#poll('ACME order', orderUrl, signal, (o) => (o.status === 'valid' ? true : o.status === 'processing' ? false : `the order is "${String(o.status)}" after finalize`));
      }
    }
    const certificateUrl = string(order.certificate);
    if (certificateUrl === undefined) throw new AcmeError('ACME order: valid but no certificate URL');
    const download = await this.#post('ACME certificate download', certificateUrl, undefined, [200], signal, 'application/pem-certificate-chain');
    const certificate = download.body.toString('utf8');
    if (!certificate.includes('-----BEGIN CERTIFICATE-----')) throw new AcmeError(`ACME certificate download: "${certificateUrl}" returned no PEM certificate`);
    return { certificate, orderUrl };
  }

  /** The suggested renewal window (RFC 9773 section 4.2), or undefined when the directory has no renewalInfo. */
  async renewalInfo(certificatePem: string, signal?: AbortSignal): Promise<RenewalWindow | undefined> {
    const directory = await this.#getDirectory(signal);
    if (directory.renewalInfo === undefined) return undefined;
    const url = `${directory.renewalInfo.replace(/\/+$/, '')}/${certificateIdentifier(certificatePem)}`;
    const what = 'ACME renewal information';
    const res = await this.#get(what, url, signal);
    expectStatus(what, url, res, [200]);
    const body = parseJson(what, res);
    const window = typeof body.suggestedWindow === 'object' && body.suggestedWindow !== null ? (body.suggestedWindow as Json) : {};
    const start = new Date(string(window.start) ?? NaN);
    const end = new Date(string(window.end) ?? NaN);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end.getTime() < start.getTime()) {
      throw new AcmeError(`${what}: "${url}" gave no valid suggestedWindow`);
    }
    const result: RenewalWindow = { start, end };
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    const explanation = string(body.explanationURL);
    if (explanation !== undefined) result.explanationUrl = explanation;
    return result;
  }

  /** Fetches the challenges of every pending authorization, presents them, asks for validation and waits. */
  async #authorize(order: Json, options: IssueOptions): Promise<void> {
    const { signal } = options;
    const urls = Array.isArray(order.authorizations) ? order.authorizations.filter((u): u is string => typeof u === 'string') : [];
    const pending: Array<{ authorizationUrl: string; challengeUrl: string; challenge: PendingChallenge }> = [];
    for (const authorizationUrl of urls) {
      const authorization = parseJson('ACME authorization', await this.#post('ACME authorization', authorizationUrl, undefined, [200], signal));
      if (authorization.status === 'valid') continue;
      const identifierObject = typeof authorization.identifier === 'object' && authorization.identifier !== null ? (authorization.identifier as Json) : {};
      const identifier = string(identifierObject.value) ?? '?';
      if (authorization.status !== 'pending') throw objectError(`ACME authorization of "${identifier}"`, authorization, `the authorization is "${String(authorization.status)}"`);
      const challenges = Array.isArray(authorization.challenges) ? (authorization.challenges as Json[]) : [];
      const offered = challenges.find((c) => c.type === options.challenge);
      const token = string(offered?.token);
      const challengeUrl = string(offered?.url);
      if (offered === undefined || token === undefined || challengeUrl === undefined) {
        const types = challenges.map((c) => String(c.type)).join(', ');
        throw new AcmeError(`ACME authorization of "${identifier}": no "${options.challenge}" challenge offered (offered: ${types === '' ? 'none' : types})`);
      }
      if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new AcmeError(`ACME authorization of "${identifier}": the challenge token is not base64url`);
      const keyAuthorization = `${token}.${this.#thumbprint}`;
      const dnsValue = base64url(createHash('sha256').update(keyAuthorization).digest());
      pending.push({ authorizationUrl, challengeUrl, challenge: { type: options.challenge, identifier, token, keyAuthorization, dnsValue } });
    }
    const presented: PendingChallenge[] = [];
    let failure: { error: unknown } | undefined;
    try {
      for (const { challenge } of pending) {
        await options.present(challenge);
        presented.push(challenge);
      }
      for (const { challengeUrl, challenge } of pending) {
        await this.#post(`ACME challenge of "${challenge.identifier}"`, challengeUrl, {}, [200], signal);
      }
      for (const { authorizationUrl, challenge } of pending) {
        await this.#poll(`ACME authorization of "${challenge.identifier}"`, authorizationUrl, signal, (a) => (a.status === 'valid' ? true : a.status === 'pending' ? false : objectError(`ACME ${challenge.type} validation of "${challenge.identifier}"`, a, `the authorization is "${String(a.status)}"`)));
      }
    } catch (err) {
      failure = { error: err };
    }
    // Every presented challenge is cleaned up; a cleanup failure after another error is not the news.
    for (const challenge of presented) {
      try {
        await options.cleanup(challenge);
      } catch (err) {
        failure ??= { error: new AcmeError(`ACME challenge cleanup of "${challenge.identifier}" failed`, { cause: err }) };
      }
    }
    if (failure !== undefined) throw failure.error;
  }

  /**
   * POST-as-GET `url` until `done` says true (returns the object), an error (thrown) or a message
   * (thrown as an AcmeError). Waits honour Retry-After; at most MAX_POLLS polls and pollTimeoutMs.
   */
  async #poll(what: string, url: string, signal: AbortSignal | undefined, done: (object: Json) => boolean | string | Error): Promise<Json> {
    const deadline = Date.now() + this.#pollTimeoutMs;
    let wait = FIRST_POLL_DELAY_MS;
    for (let poll = 1; ; poll++) {
      const res = await this.#post(what, url, undefined, [200], signal);
      const object = parseJson(what, res);
      const verdict = done(object);
      if (verdict === true) return object;
      if (verdict instanceof Error) throw verdict;
      if (typeof verdict === 'string') throw objectError(what, object, verdict);
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      const next = retryAfterMs ?? wait;
      if (poll >= MAX_POLLS || Date.now() + next > deadline) {
        throw new AcmeError(`${what}: still "${String(object.status)}" after ${poll} polls in ${this.#pollTimeoutMs} ms or less`, { retryAfterMs });
      }
      await delay(what, next, signal);
      wait = Math.min(wait * 2, MAX_POLL_DELAY_MS);
    }
  }

  /** newAccount; sets and returns the account URL. */
  async #newAccount(what: string, directory: Directory, payload: Json, signal: AbortSignal | undefined): Promise<string> {
    const res = await this.#post(what, directory.newAccount, payload, [200, 201], signal, undefined, true);
    this.#accountUrl = this.#location(what, res);
    return this.#accountUrl;
  }

  #location(what: string, res: AcmeResponse): string {
    const location = res.headers.location;
    if (location === undefined || location === '') throw new AcmeError(`${what}: the answer has no Location`);
    return location;
  }

  /** The directory, fetched once; a failed fetch is tried again on the next call. */
  #getDirectory(signal: AbortSignal | undefined): Promise<Directory> {
    this.#directory ??= this.#fetchDirectory(signal).catch((err: unknown) => {
      this.#directory = undefined;
      throw err;
    });
    return this.#directory;
  }

  /**
   * A GET that follows redirects, as nginx-acme's does (at most {@link MAX_REDIRECTS}, each
   * Location resolved against the URL that sent it; the transport refuses any but https).
   */
  async #get(what: string, url: string, signal: AbortSignal | undefined): Promise<AcmeResponse> {
    let at = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await this.#transport.send(what, at, { method: 'GET', signal });
      if (res.status < 300 || res.status > 399 || res.status === 304) return res;
      const location = res.headers.location;
      if (location === undefined) throw new AcmeError(`${what}: "${at}" answered ${res.status} with no Location`);
      try {
        at = new URL(location, at).href;
      } catch {
        throw new AcmeError(`${what}: "${at}" answered ${res.status} with an invalid Location`);
      }
    }
    throw new AcmeError(`${what}: more than ${MAX_REDIRECTS} redirects from "${url}"`);
  }

  async #fetchDirectory(signal: AbortSignal | undefined): Promise<Directory> {
    const what = 'ACME directory';
    const res = await this.#get(what, this.#directoryUrl, signal);
    expectStatus(what, this.#directoryUrl, res, [200]);
    const body = parseJson(what, res);
    const newNonce = string(body.newNonce);
    const newAccount = string(body.newAccount);
    const newOrder = string(body.newOrder);
    if (newNonce === undefined || newAccount === undefined || newOrder === undefined) {
      throw new AcmeError(`${what}: "${this.#directoryUrl}" is not an ACME directory (newNonce, newAccount or newOrder missing)`);
    }
    const meta = typeof body.meta === 'object' && body.meta !== null ? (body.meta as Json) : {};
    return { newNonce, newAccount, newOrder, renewalInfo: string(body.renewalInfo), externalAccountRequired: meta.externalAccountRequired === true };
  }

  #keepNonce(res: AcmeResponse): void {
    const nonce = res.headers['replay-nonce'];
    if (nonce !== undefined && /^[A-Za-z0-9_-]+$/.test(nonce)) {
      this.#nonces.push(nonce);
      if (this.#nonces.length > NONCE_POOL_SIZE) this.#nonces.shift();
    }
  }

  /** A nonce from the pool, or a fresh one from newNonce (RFC 8555 section 7.2). */
  async #nonce(directory: Directory, signal: AbortSignal | undefined): Promise<string> {
    const pooled = this.#nonces.pop();
    if (pooled !== undefined) return pooled;
    const what = 'ACME new nonce';
    const res = await this.#transport.send(what, directory.newNonce, { method: 'HEAD', signal });
    expectStatus(what, directory.newNonce, res, [200, 204]);
    this.#keepNonce(res);
    const nonce = this.#nonces.pop();
    if (nonce === undefined) throw new AcmeError(`${what}: "${directory.newNonce}" gave no Replay-Nonce`);
    return nonce;
  }

  /** One signed request (payload undefined: POST-as-GET), retried on badNonce with the nonce it carried. */
  async #post(what: string, url: string, payload: unknown, expected: readonly number[], signal: AbortSignal | undefined, accept?: string, useJwk = false): Promise<AcmeResponse> {
    const directory = await this.#getDirectory(signal);
    if (!useJwk && this.#accountUrl === undefined) throw new AcmeError(`${what}: no account`);
    const key = useJwk ? { jwk: this.#jwk } : { kid: this.#accountUrl };
    for (let attempt = 0; ; attempt++) {
      const nonce = await this.#nonce(directory, signal);
      const body = JSON.stringify(signJws(this.#key, { nonce, url, ...key }, payload));
      const res = await this.#transport.send(what, url, { method: 'POST', body, accept: accept ?? 'application/json', signal });
      this.#keepNonce(res);
      try {
        expectStatus(what, url, res, expected);
        return res;
      } catch (err) {
        const badNonce = err instanceof AcmeProblemError && err.problemType === `${ACME_ERROR_PREFIX}badNonce`;
        if (!badNonce || attempt >= MAX_BAD_NONCE_RETRIES) throw err;
      }
    }
  }
}
