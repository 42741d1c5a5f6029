/**
 * The master's side of ACME: for every `acme_certificate`, one {@link AcmeCertificateTask} that
 * loads the stored certificate, plans its renewal (src/acme/schedule.ts), runs one order at a time,
 * persists the result under the issuer's `state_path` (src/acme/state.ts), hands it to the
 * certificate store through the same checks as an admin API put, and keeps the challenge tables
 * the workers answer from. The protocol itself is injected ({@link AcmeDependencies}), so that
 * tests drive the manager with a double and the master with src/acme/client.ts.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPair, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { checkCertificate } from '../tls/certificate-store.js';
import { AcmeStateDir, type AcmeStatusFile, type AcmeStoredPair } from './state.js';
import { backoffMs, EXPIRY_ALERT_EVERY_MS, EXPIRY_ALERT_MS, lifetimeRenewalTime, MAX_TIMER_MS, windowRenewalTime } from './schedule.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const execFileAsync = promisify(execFile);

/** A challenge the CA is about to validate (src/acme/client.ts's PendingChallenge). */
export interface AcmePendingChallenge {
  readonly type: 'http-01' | 'tls-alpn-01' | 'dns-01';
  readonly identifier: string;
  readonly token: string;
  readonly keyAuthorization: string;
  readonly dnsValue: string;
}

/** What an order is given (src/acme/client.ts's IssueOptions). */
export interface AcmeIssueOptions {
  readonly names: readonly string[];
  readonly certificateKey: KeyObject;
  readonly challenge: AcmePendingChallenge['type'];
  readonly replaces?: string;
  present(challenge: AcmePendingChallenge): Promise<void>;
  cleanup(challenge: AcmePendingChallenge): Promise<void>;
  readonly signal?: AbortSignal;
}

/** The CA's suggested renewal window (RFC 9773). */
export interface AcmeRenewalWindow {
  readonly start: Date;
  readonly end: Date;
  readonly retryAfterMs?: number | undefined;
  readonly explanationUrl?: string | undefined;
}

/** The ACME client as the manager uses it: src/acme/client.ts's AcmeClient has this shape. */
export interface AcmeProtocolClient {
  account(options: { contact: readonly string[]; termsOfServiceAgreed: boolean; externalAccountBinding?: { kid: string; hmacKey: Buffer } }): Promise<{ url: string }>;
  issue(options: AcmeIssueOptions): Promise<{ certificate: string; orderUrl: string }>;
  renewalInfo(certificatePem: string): Promise<AcmeRenewalWindow | undefined>;
}

/** How a client is made for an issuer (src/acme/client.ts's AcmeClientOptions). */
export interface AcmeClientSettings {
  readonly directoryUrl: string;
  readonly accountKey: KeyObject;
  readonly ca?: string;
  readonly verify?: boolean;
}

/** The protocol side, injected. */
export interface AcmeDependencies {
  createClient(settings: AcmeClientSettings): AcmeProtocolClient;
  /** RFC 9773's certificate identifier, for `replaces`. */
  certificateIdentifier(certificatePem: string): string;
  /** The RFC 8737 challenge certificate for tls-alpn-01. */
  tlsAlpnCertificate(name: string, keyAuthorization: string): Promise<{ cert: string; key: string }>;
}

/** An issuer as the manager needs it (src/acme/acme-config.ts's AcmeIssuerConfig has this shape). */
export interface AcmeIssuerSettings {
  readonly name: string;
  readonly uri: string;
  readonly contact: readonly string[];
  readonly accountKey: string | undefined;
  readonly accountKeyType: string;
  /** `hmacKey` as read by the configuration; without it, `file` is read (base64url, or nginx-acme's `data:KEY`). */
  readonly externalAccountKey: { readonly kid: string; readonly file: string; readonly hmacKey?: Buffer } | undefined;
  readonly trustedCertificate: string | undefined;
  readonly verify: boolean;
  /** Absolute; undefined (or empty) for `state_path off`: nothing persisted. */
  readonly statePath: string | undefined;
  readonly acceptTermsOfService: boolean;
  readonly challenge: AcmePendingChallenge['type'];
  readonly dnsCommand: string | undefined;
  readonly where: string;
}

/** An `acme_certificate` (src/acme/acme-config.ts's AcmeCertificateConfig has this shape). */
export interface AcmeCertificateSettings {
  readonly issuer: string;
  /** The first is the store name. */
  readonly names: readonly string[];
  readonly keyType: 'ecdsa' | 'rsa';
  readonly keyBits: number;
  readonly where: string;
}

/** Everything the manager runs (src/acme/acme-config.ts's AcmeSettings has this shape). */
export interface AcmeManagerSettings {
  readonly issuers: readonly AcmeIssuerSettings[];
  readonly certificates: readonly AcmeCertificateSettings[];
}

/** What the workers answer challenges from: the body of the `acme-challenges` message. */
export interface AcmeChallengeTables {
  /** token -> key authorization (http-01). */
  readonly http: Readonly<Record<string, string>>;
  /** server name -> challenge certificate (tls-alpn-01). */
  readonly tlsAlpn: Readonly<Record<string, { readonly cert: string; readonly key: string }>>;
}

/** One ACME name's state, as `hitless certs list` and `GET /v1/acme` show it (null: none). */
export interface AcmeNameState {
  /** The store name (the first identifier). */
  readonly name: string;
  readonly names: readonly string[];
  readonly issuer: string;
  /** ISO 8601, of the certificate held now; null before the first issuance. */
  readonly notAfter: string | null;
  /** ISO 8601: the next order (or renewal information check); null while an order runs. */
  readonly nextRenewal: string | null;
  /** Whether the time comes from the CA's renewal information (RFC 9773). */
  readonly renewalInfo: boolean;
  readonly ordering: boolean;
  /** Failures in a row since the last success. */
  readonly failures: number;
  readonly lastError: { readonly at: string; readonly type: string | null; readonly detail: string } | null;
}

/** The log lines the manager writes. */
export interface AcmeLog {
  alert(message: string): void;
  error(message: string): void;
  warn(message: string): void;
  notice(message: string): void;
  info(message: string): void;
}

/** Time, injectable for tests. Default: Date.now and unref'd setTimeout. */
export interface AcmeClock {
  now(): number;
  /** Calls `fn` after `ms`; returns a canceller. The real one never keeps the process alive. */
  schedule(fn: () => void, ms: number): () => void;
}

/** What {@link AcmeManager} is built with. */
export interface AcmeManagerOptions {
  readonly dependencies: AcmeDependencies;
  /** The current error log (it changes on reload). */
  readonly log: () => AcmeLog;
  /** Puts an issued certificate into the store with the admin API's checks (MasterCertificates.put). */
  install(name: string, cert: string, key: string): Promise<void>;
  /** The chain the store holds for `name` now, if any. */
  served(name: string): string | undefined;
  /**
   * Sends the whole challenge tables to every worker; a promise settles once every worker answers
   * from them (waited for at most {@link PUBLISH_TIMEOUT_MS} before the CA is told to validate).
   */
  publishChallenges(tables: AcmeChallengeTables): Promise<void> | void;
  /** Default: the real clock. */
  readonly clock?: AcmeClock;
  /** Default: Math.random. */
  readonly random?: () => number;
}

/** The real clock: timers are unref'd, so a pending renewal never keeps a process alive. */
export const REAL_CLOCK: AcmeClock = {
  now: () => Date.now(),
  schedule(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** How long the workers may take to acknowledge a challenge table; then the CA is asked anyway. */
export const PUBLISH_TIMEOUT_MS = 10_000;
/** How long a dns-01 hook command may run. */
const DNS_COMMAND_TIMEOUT_MS = 60_000;
/** How often the CA's renewal information is asked again at most, whatever its Retry-After. */
const RENEWAL_INFO_MIN_RECHECK_MS = 60_000;

/** The manager of every ACME certificate of the master. */
export class AcmeManager {
  readonly #options: AcmeManagerOptions;
  readonly #clock: AcmeClock;
  readonly #random: () => number;
  readonly #issuers = new Map<string, AcmeIssuerRuntime>();
  readonly #tasks = new Map<string, AcmeCertificateTask>();
  readonly #http = new Map<string, string>();
  readonly #tlsAlpn = new Map<string, { cert: string; key: string }>();
  #closed = false;

  constructor(options: AcmeManagerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Starts or re-plans every certificate of `settings`: a certificate whose configuration (and
   * issuer's) is unchanged keeps its plan and any order in flight; a changed one is stopped and
   * started again from its stored state (after its order in flight settled: one order at a time
   * per name); a removed one is stopped. Resolves once every certificate has loaded and planned.
   */
  async configure(settings: AcmeManagerSettings): Promise<void> {
    if (this.#closed) return;
    const issuers = new Map<string, AcmeIssuerRuntime>();
    for (const issuer of settings.issuers) {
      const signature = signatureOf(issuer);
      const existing = this.#issuers.get(issuer.name);
      issuers.set(issuer.name, existing !== undefined && existing.signature === signature ? existing : new AcmeIssuerRuntime(issuer, signature, this.#options.dependencies));
    }
    this.#issuers.clear();
    for (const [name, issuer] of issuers) this.#issuers.set(name, issuer);

    const wanted = new Map<string, AcmeCertificateSettings>();
    for (const certificate of settings.certificates) {
      const name = certificate.names[0];
      if (name !== undefined && !wanted.has(name)) wanted.set(name, certificate);
    }
    const starting: Promise<void>[] = [];
    for (const [name, task] of this.#tasks) {
      const next = wanted.get(name);
      const issuer = next === undefined ? undefined : issuers.get(next.issuer);
      if (next !== undefined && issuer !== undefined && task.issuer === issuer && task.signature === signatureOf(next)) {
        // Unchanged: its plan stands; a reload onto another certificate_store gets its certificate again.
        starting.push(task.ensureServed());
        continue;
      }
      task.stop();
      this.#tasks.delete(name);
      if (next === undefined || issuer === undefined) continue;
      starting.push(this.#start(name, next, issuer, task.settled()));
    }
    for (const [name, certificate] of wanted) {
      if (this.#tasks.has(name)) continue;
      const issuer = issuers.get(certificate.issuer);
      if (issuer === undefined) {
        this.#options.log().error(`acme certificate "${name}": no acme_issuer "${certificate.issuer}" (${certificate.where})`);
        continue;
      }
      starting.push(this.#start(name, certificate, issuer, Promise.resolve()));
    }
    await Promise.all(starting);
  }

  #start(name: string, certificate: AcmeCertificateSettings, issuer: AcmeIssuerRuntime, after: Promise<void>): Promise<void> {
    const task = new AcmeCertificateTask(name, certificate, signatureOf(certificate), issuer, this);
    this.#tasks.set(name, task);
    return after.then(() => task.start());
  }

  /** The current challenge tables (what a new worker is sent). */
  challengeTables(): AcmeChallengeTables {
    return { http: Object.fromEntries(this.#http), tlsAlpn: Object.fromEntries(this.#tlsAlpn) };
  }

  /** Every ACME name's state, sorted by name. */
  states(): AcmeNameState[] {
    return [...this.#tasks.values()].map((task) => task.state()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Stops every timer and order (master exit). Nothing is ordered afterwards. */
  close(): void {
    this.#closed = true;
    for (const task of this.#tasks.values()) task.stop();
    this.#tasks.clear();
    this.#http.clear();
    this.#tlsAlpn.clear();
  }

  /** Resolves once every order in flight has settled (tests, and an orderly exit). */
  async idle(): Promise<void> {
    await Promise.all([...this.#tasks.values()].map((task) => task.settled()));
  }

  /** @internal For the tasks. */
  get options(): AcmeManagerOptions {
    return this.#options;
  }

  /** @internal */
  get clock(): AcmeClock {
    return this.#clock;
  }

  /** @internal */
  random(): number {
    return this.#random();
  }

  /** @internal Makes a challenge answerable by every worker. */
  async present(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void> {
    if (challenge.type === 'http-01') this.#http.set(challenge.token, challenge.keyAuthorization);
    else if (challenge.type === 'tls-alpn-01') this.#tlsAlpn.set(challenge.identifier, await this.#options.dependencies.tlsAlpnCertificate(challenge.identifier, challenge.keyAuthorization));
    else return runDnsCommand(issuer, 'present', challenge);
    await this.#publish();
  }

  /** @internal Forgets a challenge once the CA has validated it (or the order failed). */
  async cleanup(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void> {
    if (challenge.type === 'http-01') this.#http.delete(challenge.token);
    else if (challenge.type === 'tls-alpn-01') this.#tlsAlpn.delete(challenge.identifier);
    else return runDnsCommand(issuer, 'cleanup', challenge);
    await this.#publish();
  }

  /** Sends the tables and waits (bounded) until every worker answers from them. */
  async #publish(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const sent = Promise.resolve(this.#options.publishChallenges(this.challengeTables()));
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#options.log().warn(`acme: the workers did not acknowledge the challenge table within ${PUBLISH_TIMEOUT_MS / 1000}s`);
        resolve();
      }, PUBLISH_TIMEOUT_MS);
      timer.unref();
    });
    try {
      await Promise.race([sent, bound]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * dns-01 through the issuer's `challenge dns-01 command=...`: run as
 * `command present|cleanup _acme-challenge.NAME VALUE`, no shell, with a time limit.
 */
async function runDnsCommand(issuer: AcmeIssuerSettings, action: 'present' | 'cleanup', challenge: AcmePendingChallenge): Promise<void> {
  if (issuer.dnsCommand === undefined) throw new Error(`acme_issuer "${issuer.name}" uses dns-01 without a command`);
  const record = `_acme-challenge.${challenge.identifier.replace(/^\*\./, '')}`;
  try {
    await execFileAsync(issuer.dnsCommand, [action, record, challenge.dnsValue], { timeout: DNS_COMMAND_TIMEOUT_MS });
  } catch (err) {
    throw new Error(`The dns-01 command "${issuer.dnsCommand} ${action} ${record}" failed: ${(err as Error).message.trim()}`, { cause: err });
  }
}

/** One issuer: its state directory, account key, client and account, made once and shared by its certificates. */
class AcmeIssuerRuntime {
  readonly settings: AcmeIssuerSettings;
  readonly signature: string;
  readonly stateDir: AcmeStateDir | undefined;
  readonly #dependencies: AcmeDependencies;
  #prepared: Promise<void> | undefined;
  #client: Promise<AcmeProtocolClient> | undefined;
  #account: Promise<string> | undefined;

  constructor(settings: AcmeIssuerSettings, signature: string, dependencies: AcmeDependencies) {
    this.settings = settings;
    this.signature = signature;
    this.stateDir = settings.statePath === undefined || settings.statePath === '' ? undefined : new AcmeStateDir(settings.statePath);
    this.#dependencies = dependencies;
  }

  /** Creates the state directory once (a failure is tried again next time). */
  prepare(): Promise<void> {
    this.#prepared ??= (this.stateDir?.prepare() ?? Promise.resolve()).catch((err: unknown) => {
      this.#prepared = undefined;
      throw err;
    });
    return this.#prepared;
  }

  /** The client, with the configured, stored or a newly generated (and stored) account key. */
  client(): Promise<AcmeProtocolClient> {
    this.#client ??= this.#makeClient().catch((err: unknown) => {
      this.#client = undefined;
      throw err;
    });
    return this.#client;
  }

  /** Registers (or finds, RFC 8555 section 7.3.1) the account once; its URL is stored. */
  account(): Promise<string> {
    this.#account ??= this.#register().catch((err: unknown) => {
      this.#account = undefined;
      throw err;
    });
    return this.#account;
  }

  async #makeClient(): Promise<AcmeProtocolClient> {
    await this.prepare();
    const settings = this.settings;
    const accountKey = await this.#accountKey();
    const ca = settings.trustedCertificate === undefined ? undefined : await readFile(settings.trustedCertificate, 'utf8');
    return this.#dependencies.createClient({ directoryUrl: settings.uri, accountKey, verify: settings.verify, ...(ca === undefined ? {} : { ca }) });
  }

  async #accountKey(): Promise<KeyObject> {
    const { accountKey, accountKeyType } = this.settings;
    if (accountKey !== undefined) return createPrivateKey(await readFile(accountKey));
    const stored = await this.stateDir?.readAccountKey();
    if (stored !== undefined) return createPrivateKey(stored);
    const key = await generateKey(accountKeyType);
    await this.stateDir?.writeAccountKey(key.export({ type: 'pkcs8', format: 'pem' }).toString());
    return key;
  }

  async #register(): Promise<string> {
    const client = await this.client();
    const settings = this.settings;
    const eab = settings.externalAccountKey;
    const { url } = await client.account({
      contact: settings.contact,
      termsOfServiceAgreed: settings.acceptTermsOfService,
      ...(eab === undefined ? {} : { externalAccountBinding: { kid: eab.kid, hmacKey: eab.hmacKey ?? (await readMacKey(eab.file)) } }),
    });
    if (this.stateDir !== undefined && (await this.stateDir.readAccountUrl()) !== url) await this.stateDir.writeAccountUrl(url);
    return url;
  }
}

/** An EAB MAC key: base64url text in a file, or nginx-acme's `data:KEY` inline form. */
async function readMacKey(file: string): Promise<Buffer> {
  const text = file.startsWith('data:') ? file.slice('data:'.length) : await readFile(file, 'utf8');
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length === 0) throw new Error(`The external account key "${file.startsWith('data:') ? 'data:...' : file}" is empty`);
  return key;
}

/** A new private key for `type`: `ecdsa:256|384|521` or `rsa:2048|3072|4096` (nginx-acme's syntax). */
export async function generateKey(type: string): Promise<KeyObject> {
  const [algorithm = 'ecdsa', size] = type.split(':');
  const bits = size === undefined ? undefined : Number(size);
  if (algorithm === 'rsa') return (await generateKeyPairAsync('rsa', { modulusLength: bits ?? 2048 })).privateKey;
  const curve = bits === 384 ? 'P-384' : bits === 521 ? 'P-521' : 'P-256';
  return (await generateKeyPairAsync('ec', { namedCurve: curve })).privateKey;
}

/** A certificate held, with the dates the plan is made from. */
interface HeldCertificate extends AcmeStoredPair {
  readonly notBefore: number;
  readonly notAfter: number;
}

/** What the next timer does. */
type Step = 'order' | 'check';

/** One `acme_certificate`: its held certificate, its plan, its one order at a time. */
class AcmeCertificateTask {
  readonly name: string;
  readonly settings: AcmeCertificateSettings;
  readonly signature: string;
  readonly issuer: AcmeIssuerRuntime;
  readonly #manager: AcmeManager;
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

  constructor(name: string, settings: AcmeCertificateSettings, signature: string, issuer: AcmeIssuerRuntime, manager: AcmeManager) {
    this.name = name;
    this.settings = settings;
    this.signature = signature;
    this.issuer = issuer;
    this.#manager = manager;
  }

  get #log(): AcmeLog {
    return this.#manager.options.log();
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
    if (held === undefined || this.#stopped || this.#manager.options.served(this.name) === held.cert) return;
    try {
      await this.#manager.options.install(this.name, held.cert, held.key);
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
    if (notAfter <= this.#manager.clock.now()) {
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
    const now = this.#manager.clock.now();
    const held = this.#held;
    const retryAt = this.#status.failures > 0 && this.#status.nextAttempt !== undefined ? Date.parse(this.#status.nextAttempt) : undefined;
    if (held === undefined) {
      this.#arm(retryAt ?? now, 'order');
      return;
    }
    let at = lifetimeRenewalTime(held.notBefore, held.notAfter, this.#manager.random());
    let step: Step = 'order';
    this.#renewalInfo = false;
    const window = await this.#askRenewalInfo(held);
    if (this.#stopped) return;
    if (window !== undefined) {
      this.#renewalInfo = true;
      at = windowRenewalTime(window.start.getTime(), window.end.getTime(), now, this.#manager.random());
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
    const delay = Math.max(0, at - this.#manager.clock.now());
    const reach = delay > MAX_TIMER_MS;
    this.#cancelTimer = this.#manager.clock.schedule(
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
    this.#lastOrderAt = this.#manager.clock.now();
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
      const replaces = held !== undefined && this.#renewalInfo ? this.#manager.options.dependencies.certificateIdentifier(held.cert) : undefined;
      const issued = await client.issue({
        names: this.settings.names,
        certificateKey: key,
        challenge: issuer.challenge,
        ...(replaces === undefined ? {} : { replaces }),
        present: (challenge) => this.#manager.present(challenge, issuer),
        cleanup: (challenge) => this.#manager.cleanup(challenge, issuer),
        signal,
      });
      if (signal.aborted) return;
      pair = { cert: issued.certificate, key: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
      // The store's own checks first: a refused certificate replaces nothing, on disk or served.
      summary = checkCertificate(this.name, pair.cert, pair.key, { now: new Date(this.#manager.clock.now()) }).summary;
      await this.issuer.stateDir?.writeCertificate(this.name, pair);
      await this.#manager.options.install(this.name, pair.cert, pair.key);
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
    const now = this.#manager.clock.now();
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
    const left = held.notAfter - this.#manager.clock.now();
    if (left > EXPIRY_ALERT_MS) {
      // Looked at again when it enters the last 7 days (or at the next failure, whichever comes first).
      this.#cancelAlert = this.#manager.clock.schedule(() => {
        this.#cancelAlert = undefined;
        if (!this.#stopped) this.#checkExpiry();
      }, Math.min(MAX_TIMER_MS, left - EXPIRY_ALERT_MS));
      return;
    }
    const alert = (): void => {
      const remaining = held.notAfter - this.#manager.clock.now();
      const error = this.#status.lastError;
      this.#log.alert(
        `${this.#label}: the certificate ${remaining > 0 ? `expires in ${formatDuration(remaining)}` : 'has expired'}, at ${new Date(held.notAfter).toISOString()}, and its renewal keeps failing${error === undefined ? '' : `: ${error.type === undefined ? '' : `${error.type}: `}${error.detail}`}`,
      );
      this.#cancelAlert = this.#manager.clock.schedule(() => {
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

/** What decides whether a configuration changed: everything but where it was written. */
function signatureOf(settings: AcmeIssuerSettings | AcmeCertificateSettings): string {
  const { where: _where, ...rest } = settings;
  return JSON.stringify(rest);
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
