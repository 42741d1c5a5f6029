/**
 * The master's side of ACME: for every `acme_certificate`, one {@link AcmeCertificateTask} that
 * loads the stored certificate, plans its renewal (src/acme/schedule.ts), runs one order at a time,
 * persists the result under the issuer's `state_path` (src/acme/state.ts), hands it to the
 * certificate store through the same checks as an admin API put, and keeps the challenge tables
 * the workers answer from. The protocol itself is injected ({@link AcmeDependencies}), so that
 * tests drive the manager with a double and the master with src/acme/client.ts.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { AcmeIssuerRuntime } from './acme-issuer.js';
import { AcmeCertificateTask, type TaskContext } from './certificate-task.js';
import type { AcmeCertificateSettings, AcmeChallengeTables, AcmeClock, AcmeIssuerSettings, AcmeManagerOptions, AcmeManagerSettings, AcmeNameState, AcmePendingChallenge } from './manager-types.js';

export type * from './manager-types.js';
export { generateKey } from './acme-issuer.js';
export { formatDuration } from './certificate-task.js';

const execFileAsync = promisify(execFile);

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

/** The manager of every ACME certificate of the master. */
export class AcmeManager {
  readonly #options: AcmeManagerOptions;
  readonly #clock: AcmeClock;
  readonly #random: () => number;
  readonly #issuers = new Map<string, AcmeIssuerRuntime>();
  readonly #tasks = new Map<string, AcmeCertificateTask>();
  readonly #http = new Map<string, string>();
  readonly #tlsAlpn = new Map<string, { cert: string; key: string }>();
  /** What every task is given. */
  readonly #context: TaskContext;
  #closed = false;

  constructor(options: AcmeManagerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#random = options.random ?? Math.random;
    this.#context = {
      options,
      clock: this.#clock,
      random: () => this.#random(),
      present: (challenge, issuer) => this.#present(challenge, issuer),
      cleanup: (challenge, issuer) => this.#cleanup(challenge, issuer),
    };
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
    const task = new AcmeCertificateTask(name, certificate, signatureOf(certificate), issuer, this.#context);
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

  /** Makes a challenge answerable by every worker (or runs the dns-01 command). */
  async #present(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void> {
    if (challenge.type === 'http-01') this.#http.set(challenge.token, challenge.keyAuthorization);
    else if (challenge.type === 'tls-alpn-01') this.#tlsAlpn.set(tlsAlpnServerName(challenge.identifier), await this.#options.dependencies.tlsAlpnCertificate(challenge.identifier, challenge.keyAuthorization));
    else return runDnsCommand(issuer, 'present', challenge);
    await this.#publish();
  }

  /** Forgets a challenge once the CA has validated it (or the order failed). */
  async #cleanup(challenge: AcmePendingChallenge, issuer: AcmeIssuerSettings): Promise<void> {
    if (challenge.type === 'http-01') this.#http.delete(challenge.token);
    else if (challenge.type === 'tls-alpn-01') this.#tlsAlpn.delete(tlsAlpnServerName(challenge.identifier));
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
 * The SNI a tls-alpn-01 validator sends for an identifier: the name itself, or for an IP address
 * its reverse-mapping name (RFC 8738 section 6: `4.3.2.1.in-addr.arpa`, nibbles in `ip6.arpa`).
 */
export function tlsAlpnServerName(identifier: string): string {
  const family = isIP(identifier);
  if (family === 4) return `${identifier.split('.').reverse().join('.')}.in-addr.arpa`;
  if (family !== 6) return identifier;
  const [head = '', tail = ''] = identifier.includes('::') ? identifier.split('::') : [identifier, ''];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${[...groups.map((group) => group.padStart(4, '0')).join('')].reverse().join('.')}.ip6.arpa`;
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

/** What decides whether a configuration changed: everything but where it was written. */
function signatureOf(settings: AcmeIssuerSettings | AcmeCertificateSettings): string {
  const { where: _where, ...rest } = settings;
  return JSON.stringify(rest);
}

