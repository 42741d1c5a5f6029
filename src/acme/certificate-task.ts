/**
 * One `acme_certificate` at run time: the certificate it holds, its plan (src/acme/schedule.ts), its
 * one order at a time, its failures and their backoff, and the hourly [alert] before expiry.
 */
import { X509Certificate } from 'node:crypto';
import { checkCertificate } from '../tls/certificate-store.js';
import { generateKey, type AcmeIssuerRuntime } from './acme-issuer.js';
import type { AcmeCertificateSettings, AcmeClock, AcmeIssuerSettings, AcmeLog, AcmeManagerOptions, AcmeNameState, AcmePendingChallenge, AcmeRenewalWindow } from './manager-types.js';
import { backoffMs, EXPIRY_ALERT_EVERY_MS, EXPIRY_ALERT_MS, lifetimeRenewalTime, MAX_TIMER_MS, windowRenewalTime } from './schedule.js';
import type { AcmeStatusFile, AcmeStoredPair } from './state.js';

/** How often the CA's renewal information is asked again at most, whatever its Retry-After. */
const RENEWAL_INFO_MIN_RECHECK_MS = 60_000;

/** What a task needs of its manager. */
export interface TaskContext {
  readonly options: AcmeManagerOptions;
  readonly clock: AcmeClock;
  random(): number;
  /** Makes a challenge answerable (every worker, or the dns-01 command). */
  present(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void>;
  cleanup(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void>;
}

/** A certificate held, with the dates the plan is made from. */
interface HeldCertificate extends AcmeStoredPair {
  readonly notBefore: number;
  readonly notAfter: number;
}

/** What the next timer does. */
type Step = 'order' | 'check';

/** One `acme_certificate`: its held certificate, its plan, its one order at a time. */
export class AcmeCertificateTask {
  readonly name: string;
  readonly settings: AcmeCertificateSettings;
  readonly signature: string;
  readonly issuer: AcmeIssuerRuntime;
  readonly #context: TaskContext;
  #held: HeldCertificate | undefined;
  #status: AcmeStatusFile = { failures: 0, lastError: undefined, nextAttempt: undefined };
  #next: { at: number; step: Step } | undefined;
  #renewalInfo = false;
  #cancelTimer: (() => void) | undefined;
  #cancelAlert: (() => void) | undefined;
  #ordering: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #lastOrderAt: number | undefined;
  #stopped = false;

  constructor(name: string, settings: AcmeCertificateSettings, signature: string, issuer: AcmeIssuerRuntime, context: TaskContext) {
    this.name = name;
    this.settings = settings;
    this.signature = signature;
    this.issuer = issuer;
    this.#context = context;
  }

  get #log(): AcmeLog {
    return this.#context.options.log();
  }

  get #label(): string {
    return `acme certificate "${this.name}" (issuer "${this.issuer.settings.name}")`;
  }

  /** Loads the stored state, serves a stored certificate the store lacks, and plans. */
  async start(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.issuer.prepare();
      const dir = this.issuer.stateDir;
      this.#status = (await dir?.readStatus(this.name)) ?? this.#status;
      const stored = await dir?.readCertificate(this.name);
      if (stored !== undefined) this.#held = this.#usable(stored);
    } catch (err) {
      this.#log.error(`${this.#label}: cannot read its state in "${this.issuer.settings.statePath ?? ''}": ${describe(err)}`);
    }
    if (this.#stopped) return;
    await this.ensureServed();
    await this.#plan();
  }

  /** Puts the held certificate into the store when the store holds another (or none) for the name. */
  async ensureServed(): Promise<void> {
    const held = this.#held;
    if (held === undefined || this.#stopped || this.#context.options.served(this.name) === held.cert) return;
    try {
      await this.#context.options.install(this.name, held.cert, held.key);
    } catch (err) {
      this.#log.error(`${this.#label}: the stored certificate was refused: ${describe(err)}`);
      if (this.#held === held) this.#held = undefined;
    }
  }

  /** A stored certificate that is still valid and covers the configured names, or undefined. */
  #usable(pair: AcmeStoredPair): HeldCertificate | undefined {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(pair.cert);
    } catch (err) {
      this.#log.error(`${this.#label}: the stored certificate cannot be read: ${describe(err)}`);
      return undefined;
    }
    const notBefore = Date.parse(leaf.validFrom);
    const notAfter = Date.parse(leaf.validTo);
    if (notAfter <= this.#context.clock.now()) {
      this.#log.notice(`${this.#label}: the stored certificate expired at ${new Date(notAfter).toISOString()}, ordering a new one`);
      return undefined;
    }
    const covered = sanNames(leaf);
    const missing = this.settings.names.filter((name) => !covered.has(name.toLowerCase()));
    if (missing.length > 0) {
      this.#log.notice(`${this.#label}: the stored certificate does not cover ${missing.map((name) => `"${name}"`).join(', ')}, ordering a new one`);
      return undefined;
    }
    return { ...pair, notBefore, notAfter };
  }

  /** Plans the next step from the held certificate, the failures and the CA's renewal information. */
  async #plan(): Promise<void> {
    if (this.#stopped) return;
    const now = this.#context.clock.now();
    const held = this.#held;
    const retryAt = this.#status.failures > 0 && this.#status.nextAttempt !== undefined ? Date.parse(this.#status.nextAttempt) : undefined;
    if (held === undefined) {
      this.#arm(retryAt ?? now, 'order');
      return;
    }
    let at = lifetimeRenewalTime(held.notBefore, held.notAfter, this.#context.random());
    let step: Step = 'order';
    this.#renewalInfo = false;
    const window = await this.#askRenewalInfo(held);
    if (this.#stopped) return;
    if (window !== undefined) {
      this.#renewalInfo = true;
      at = windowRenewalTime(window.start.getTime(), window.end.getTime(), now, this.#context.random());
      // RFC 9773 section 4.3.2: ask again after Retry-After, if that comes before the renewal.
      const recheck = window.retryAfterMs === undefined ? undefined : now + Math.max(RENEWAL_INFO_MIN_RECHECK_MS, window.retryAfterMs);
      if (recheck !== undefined && recheck < at) {
        at = recheck;
        step = 'check';
      }
    }
    if (retryAt !== undefined) {
      at = retryAt;
      step = 'order';
    }
    // Never two orders of a name closer than the first backoff step: no loop with a CA whose
    // certificates are already due when issued.
    if (step === 'order' && this.#lastOrderAt !== undefined) at = Math.max(at, this.#lastOrderAt + backoffMs(1, held.notAfter - held.notBefore));
    this.#arm(at, step);
    this.#checkExpiry();
  }

  async #askRenewalInfo(held: HeldCertificate): Promise<AcmeRenewalWindow | undefined> {
    try {
      const client = await this.issuer.client();
      const window = await client.renewalInfo(held.cert);
      if (window === undefined) return undefined;
      if (!(window.start.getTime() <= window.end.getTime()) || window.end.getTime() > held.notAfter) {
        this.#log.warn(`${this.#label}: the CA's renewal window ${window.start.toISOString()} - ${window.end.toISOString()} is invalid, renewing by the certificate's lifetime`);
        return undefined;
      }
      return window;
    } catch (err) {
      this.#log.warn(`${this.#label}: cannot get the CA's renewal information, renewing by the certificate's lifetime: ${describe(err)}`);
      return undefined;
    }
  }

  /** Arms the one timer; a time beyond a Node timer's reach re-plans on the way. */
  #arm(at: number, step: Step): void {
    this.#cancelTimer?.();
    this.#next = { at, step };
    const delay = Math.max(0, at - this.#context.clock.now());
    const reach = delay > MAX_TIMER_MS;
    this.#cancelTimer = this.#context.clock.schedule(
      () => {
        this.#cancelTimer = undefined;
        if (this.#stopped) return;
        if (reach) this.#arm(at, step);
        else if (step === 'check') void this.#plan();
        else this.#order();
      },
      reach ? MAX_TIMER_MS : delay,
    );
  }

  /** Runs one order, unless one is already running. */
  #order(): void {
    if (this.#ordering !== undefined || this.#stopped) return;
    this.#next = undefined;
    this.#lastOrderAt = this.#context.clock.now();
    const abort = new AbortController();
    this.#abort = abort;
    this.#ordering = this.#runOrder(abort.signal).finally(() => {
      this.#ordering = undefined;
      this.#abort = undefined;
    });
  }

  async #runOrder(signal: AbortSignal): Promise<void> {
    const held = this.#held;
    const issuer = this.issuer.settings;
    this.#log.notice(`${this.#label}: ${held === undefined ? 'ordering' : 'renewing'} a certificate for ${this.settings.names.join(', ')}`);
    let pair: AcmeStoredPair;
    let summary: { notAfter: string };
    try {
      const client = await this.issuer.client();
      await this.issuer.account();
      const key = await generateKey(`${this.settings.keyType}:${this.settings.keyBits}`);
      const replaces = held !== undefined && this.#renewalInfo ? this.#context.options.dependencies.certificateIdentifier(held.cert) : undefined;
      const issued = await client.issue({
        names: this.settings.names,
        certificateKey: key,
        challenge: issuer.challenge,
        ...(replaces === undefined ? {} : { replaces }),
        present: (challenge) => this.#context.present(challenge, issuer),
        cleanup: (challenge) => this.#context.cleanup(challenge, issuer),
        signal,
      });
      if (signal.aborted) return;
      pair = { cert: issued.certificate, key: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
      // The store's own checks first: a refused certificate replaces nothing, on disk or served.
      summary = checkCertificate(this.name, pair.cert, pair.key, { now: new Date(this.#context.clock.now()) }).summary;
      await this.issuer.stateDir?.writeCertificate(this.name, pair);
      await this.#context.options.install(this.name, pair.cert, pair.key);
    } catch (err) {
      if (signal.aborted || this.#stopped) return;
      await this.#failed(err);
      return;
    }
    const leaf = new X509Certificate(pair.cert);
    this.#held = { ...pair, notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo) };
    this.#status = { failures: 0, lastError: undefined, nextAttempt: undefined };
    await this.#writeStatus();
    this.#stopAlert();
    await this.#plan();
    this.#log.notice(`${this.#label}: certificate issued, valid until ${summary.notAfter}, renewal planned at ${this.#next === undefined ? '-' : new Date(this.#next.at).toISOString()}`);
  }

  async #failed(err: unknown): Promise<void> {
    const now = this.#context.clock.now();
    const problem = problemOf(err);
    const failures = this.#status.failures + 1;
    const held = this.#held;
    const delay = backoffMs(failures, held === undefined ? undefined : held.notAfter - held.notBefore, problem.retryAfterMs);
    const nextAttempt = new Date(now + delay).toISOString();
    this.#status = { failures, lastError: { at: new Date(now).toISOString(), type: problem.type, detail: problem.detail }, nextAttempt };
    const kept = held === undefined ? '' : `, still serving the certificate valid until ${new Date(held.notAfter).toISOString()}`;
    this.#log.error(`${this.#label}: order failed: ${problem.type === undefined ? '' : `${problem.type}: `}${problem.detail} (failure ${failures}), next attempt in ${formatDuration(delay)} at ${nextAttempt}${kept}`);
    await this.#writeStatus();
    if (this.#stopped) return;
    this.#arm(now + delay, 'order');
    this.#checkExpiry();
  }

  async #writeStatus(): Promise<void> {
    try {
      await this.issuer.stateDir?.writeStatus(this.name, this.#status);
    } catch (err) {
      this.#log.error(`${this.#label}: cannot write its state in "${this.issuer.settings.statePath ?? ''}": ${describe(err)}`);
    }
  }

  /** Within 7 days of expiry with the renewal overdue (it failed): an [alert] now and every hour until it succeeds. */
  #checkExpiry(): void {
    const held = this.#held;
    if (held === undefined || this.#cancelAlert !== undefined || this.#status.failures === 0) return;
    const left = held.notAfter - this.#context.clock.now();
    if (left > EXPIRY_ALERT_MS) {
      // Looked at again when it enters the last 7 days (or at the next failure, whichever comes first).
      this.#cancelAlert = this.#context.clock.schedule(() => {
        this.#cancelAlert = undefined;
        if (!this.#stopped) this.#checkExpiry();
      }, Math.min(MAX_TIMER_MS, left - EXPIRY_ALERT_MS));
      return;
    }
    const alert = (): void => {
      const remaining = held.notAfter - this.#context.clock.now();
      const error = this.#status.lastError;
      this.#log.alert(
        `${this.#label}: the certificate ${remaining > 0 ? `expires in ${formatDuration(remaining)}` : 'has expired'}, at ${new Date(held.notAfter).toISOString()}, and its renewal keeps failing${error === undefined ? '' : `: ${error.type === undefined ? '' : `${error.type}: `}${error.detail}`}`,
      );
      this.#cancelAlert = this.#context.clock.schedule(() => {
        if (!this.#stopped && this.#status.failures > 0) alert();
        else this.#cancelAlert = undefined;
      }, EXPIRY_ALERT_EVERY_MS);
    };
    alert();
  }

  #stopAlert(): void {
    this.#cancelAlert?.();
    this.#cancelAlert = undefined;
  }

  /** Stops the timers and aborts the order in flight; {@link settled} tells when it is over. */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#stopAlert();
    this.#abort?.abort();
  }

  /** Resolves once no order of this name runs. */
  settled(): Promise<void> {
    return this.#ordering ?? Promise.resolve();
  }

  state(): AcmeNameState {
    const held = this.#held;
    const error = this.#status.lastError;
    return {
      name: this.name,
      names: this.settings.names,
      issuer: this.issuer.settings.name,
      notAfter: held === undefined ? null : new Date(held.notAfter).toISOString(),
      nextRenewal: this.#next === undefined ? null : new Date(this.#next.at).toISOString(),
      renewalInfo: this.#renewalInfo,
      ordering: this.#ordering !== undefined,
      failures: this.#status.failures,
      lastError: error === undefined ? null : { at: error.at, type: error.type ?? null, detail: error.detail },
    };
  }
}

/** The DNS names of a certificate's subjectAltName, lower case. */
function sanNames(leaf: X509Certificate): Set<string> {
  const names = new Set<string>();
  for (const entry of (leaf.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) names.add(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) names.add(entry.slice(11).toLowerCase());
  }
  return names;
}

/** The ACME problem in an error (src/acme/client.ts's AcmeProblemError), or its message. */
function problemOf(err: unknown): { type: string | undefined; detail: string; retryAfterMs: number | undefined } {
  if (typeof err === 'object' && err !== null) {
    const fields = err as { problemType?: unknown; detail?: unknown; retryAfterMs?: unknown; message?: unknown };
    const type = typeof fields.problemType === 'string' ? fields.problemType : undefined;
    const detail = typeof fields.detail === 'string' && fields.detail !== '' ? fields.detail : typeof fields.message === 'string' ? fields.message : String(err);
    const retryAfterMs = typeof fields.retryAfterMs === 'number' ? fields.retryAfterMs : undefined;
    return { type, detail, retryAfterMs };
  }
  return { type: undefined, detail: String(err), retryAfterMs: undefined };
}

/** `90s`, `12m`, `3h 5m`, `2d 4h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
