/**
 * The ACME manager driven with a client double and a fake clock: first issuance, persistence and
 * its modes, a restart that orders nothing, backoff with its cap and Retry-After, the expiry
 * [alert], ARI with `replaces`, one order at a time per name, reload re-planning, close().
 */
import { createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { chmodSync, statSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as x509 from '@peculiar/x509';
import { AcmeManager, generateKey, tlsAlpnServerName, type AcmeChallengeTables, type AcmeClock, type AcmeIssueOptions, type AcmeIssuerSettings, type AcmeManagerSettings, type AcmeProtocolClient, type AcmeRenewalWindow } from '../../src/acme/manager.js';
import { AcmeStateDir } from '../../src/acme/state.js';
import { BACKOFF_CAP_MS, MAX_TIMER_MS, lifetimeRenewalTime } from '../../src/acme/schedule.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

type Generator = typeof x509.X509CertificateGenerator.createSelfSigned;
const crypto = webcrypto as unknown as NonNullable<Parameters<Generator>[1]>;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A certificate for `names` signed by (and for) `key`, valid from `notBefore` to `notAfter`. */
async function certificateFor(names: readonly string[], key: KeyObject, notBefore: number, notAfter: number): Promise<string> {
  const privateKey = await webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), ALGORITHM, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', createPublicKey(key).export({ type: 'spki', format: 'der' }), ALGORITHM, true, ['verify']);
  const serial = randomBytes(8);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${names[0] ?? 'x'}`,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signingAlgorithm: ALGORITHM,
      keys: { privateKey, publicKey } as unknown as Parameters<Generator>[0]['keys'],
      extensions: [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value })))],
    },
    crypto,
  );
  return `${cert.toString('pem')}\n`;
}

/** A clock whose time moves only when the test says. */
class FakeClock implements AcmeClock {
  #now: number;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;

  constructor(now: number) {
    this.#now = now;
  }

  now(): number {
    return this.#now;
  }

  schedule(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + ms, fn, id: ++this.#id };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Pending timers, earliest first. */
  pending(): number[] {
    return this.#timers.map((t) => t.at).sort((a, b) => a - b);
  }

  /** Moves to the next timer (at most `limit` ahead), runs it and lets the manager settle. */
  async next(manager: AcmeManager, limit = Infinity): Promise<number | undefined> {
    const [first] = [...this.#timers].sort((a, b) => a.at - b.at || a.id - b.id);
    if (first === undefined || first.at - this.#now > limit) return undefined;
    this.#timers = this.#timers.filter((t) => t !== first);
    this.#now = Math.max(this.#now, first.at);
    first.fn();
    await settle(manager);
    return first.at;
  }
}

async function settle(manager: AcmeManager): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await manager.idle();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

class ProblemError extends Error {
  readonly problemType: string;
  readonly detail: string;
  readonly retryAfterMs: number | undefined;

  constructor(type: string, detail: string, retryAfterMs?: number) {
    super(`${type}: ${detail}`);
    this.problemType = type;
    this.detail = detail;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The client double: records calls; `next` decides what the next issue() does. */
class ClientDouble implements AcmeProtocolClient {
  readonly issued: AcmeIssueOptions[] = [];
  accounts = 0;
  window: AcmeRenewalWindow | undefined;
  lifetimeMs = 10 * MINUTE;
  /** Names the CA puts in the certificate instead of the ordered ones (a misbehaving CA). */
  wrongNames: string[] | undefined;
  fail: Error | undefined;
  hang: Promise<void> | undefined;
  readonly clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  account(): Promise<{ url: string }> {
    this.accounts++;
    return Promise.resolve({ url: 'https://ca.test/acct/1' });
  }

  async issue(options: AcmeIssueOptions): Promise<{ certificate: string; orderUrl: string }> {
    this.issued.push(options);
    const challenge = { type: options.challenge, identifier: options.names[0] ?? '', token: `token${this.issued.length}`, keyAuthorization: `token${this.issued.length}.thumb`, dnsValue: 'v' };
    await options.present(challenge);
    try {
      if (this.hang !== undefined) await this.hang;
      if (options.signal?.aborted === true) throw new Error('aborted');
      if (this.fail !== undefined) throw this.fail;
      const now = this.clock.now();
      return { certificate: await certificateFor(this.wrongNames ?? options.names, options.certificateKey, now - MINUTE, now + this.lifetimeMs), orderUrl: `https://ca.test/order/${this.issued.length}` };
    } finally {
      await options.cleanup(challenge);
    }
  }

  renewalInfo(): Promise<AcmeRenewalWindow | undefined> {
    return Promise.resolve(this.window);
  }
}

interface Harness {
  readonly manager: AcmeManager;
  readonly clock: FakeClock;
  readonly client: ClientDouble;
  readonly installed: { name: string; cert: string }[];
  readonly tables: AcmeChallengeTables[];
  readonly lines: string[];
  served: Map<string, string>;
}

const dirs: TempDir[] = [];
const managers: AcmeManager[] = [];
after(() => {
  for (const manager of managers) manager.close();
  for (const dir of dirs) dir.remove();
});

function issuerIn(dir: TempDir, overrides: Partial<AcmeIssuerSettings> = {}): AcmeIssuerSettings {
  return {
    name: 'test',
    uri: 'https://ca.test/dir',
    contact: ['mailto:ops@example.com'],
    accountKey: undefined,
    accountKeyType: 'ecdsa:256',
    externalAccountKey: undefined,
    trustedCertificate: undefined,
    verify: true,
    statePath: join(dir.path, 'acme_test'),
    acceptTermsOfService: true,
    challenge: 'http-01',
    dnsCommand: undefined,
    where: 'nginx.conf:1',
    ...overrides,
  };
}

function settingsIn(dir: TempDir, names: readonly string[] = ['example.com', 'www.example.com'], issuer: Partial<AcmeIssuerSettings> = {}): AcmeManagerSettings {
  return { issuers: [issuerIn(dir, issuer)], certificates: [{ issuer: 'test', names, keyType: 'ecdsa', keyBits: 256, where: 'nginx.conf:9' }] };
}

function harness(clock = new FakeClock(Date.now()), client = new ClientDouble(clock), served = new Map<string, string>()): Harness {
  const installed: { name: string; cert: string }[] = [];
  const tables: AcmeChallengeTables[] = [];
  const lines: string[] = [];
  const line = (level: string) => (message: string): void => {
    lines.push(`[${level}] ${message}`);
  };
  const h: Harness = { clock, client, installed, tables, lines, served, manager: undefined as unknown as AcmeManager };
  const manager = new AcmeManager({
    dependencies: {
      createClient: () => client,
      certificateIdentifier: (pem) => `id-of-${pem.length}`,
      tlsAlpnCertificate: (name, keyAuthorization) => Promise.resolve({ cert: `cert ${name} ${keyAuthorization}`, key: 'key' }),
    },
    log: () => ({ alert: line('alert'), error: line('error'), warn: line('warn'), notice: line('notice'), info: line('info') }),
    install: (name, cert) => {
      installed.push({ name, cert });
      h.served.set(name, cert);
      return Promise.resolve();
    },
    served: (name) => h.served.get(name),
    publishChallenges: (t) => {
      tables.push(t);
    },
    clock,
    random: () => 0.5,
  });
  managers.push(manager);
  return { ...h, manager };
}

function newDir(): TempDir {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

describe('AcmeManager', () => {
  it('orders at once on a fresh start, persists 0700/0600 state and plans the renewal in the last third', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir));
    assert.equal(await h.clock.next(h.manager, 0), h.clock.now());
    assert.equal(h.client.issued.length, 1);
    assert.deepEqual(h.client.issued[0]?.names, ['example.com', 'www.example.com']);
    assert.equal(h.client.issued[0]?.replaces, undefined);
    assert.equal(h.client.accounts, 1);
    assert.equal(h.installed.length, 1);
    assert.equal(h.installed[0]?.name, 'example.com');
    // The challenge went to the workers and was withdrawn after.
    assert.deepEqual(h.tables[0], { http: { token1: 'token1.thumb' }, tlsAlpn: {} });
    assert.deepEqual(h.tables.at(-1), { http: {}, tlsAlpn: {} });
    const state = join(dir.path, 'acme_test');
    assert.equal(statSync(state).mode & 0o777, 0o700);
    for (const file of ['account.key', 'account.url', 'example.com.key', 'example.com.crt', 'example.com.json']) {
      assert.equal(statSync(join(state, file)).mode & 0o777, 0o600, file);
    }
    assert.equal(readFileSync(join(state, 'account.url'), 'utf8'), 'https://ca.test/acct/1\n');
    assert.equal(readFileSync(join(state, 'example.com.crt'), 'utf8'), h.installed[0]?.cert);
    const [name] = h.manager.states();
    assert.ok(name !== undefined && name.notAfter !== null && name.nextRenewal !== null);
    assert.equal(name.failures, 0);
    assert.equal(name.lastError, null);
    const notAfter = Date.parse(name.notAfter);
    const notBefore = h.clock.now() - MINUTE;
    // X.509 keeps whole seconds.
    assert.ok(Math.abs(Date.parse(name.nextRenewal) - lifetimeRenewalTime(notBefore, notAfter, 0.5)) < 2_000);
    assert.ok(h.lines.some((l) => l.startsWith('[notice]') && l.includes('certificate issued')));
    assert.ok(!h.lines.some((l) => l.includes('PRIVATE KEY')), 'no key bytes in the log');
  });

  it('orders nothing after a restart with a stored certificate outside its renewal window, and serves it if the store lacks it', async () => {
    const dir = newDir();
    const first = harness();
    await first.manager.configure(settingsIn(dir));
    await first.clock.next(first.manager, 0);
    first.manager.close();
    const stored = first.installed[0]?.cert;
    // Same store: nothing to install; an empty store gets the stored certificate.
    for (const served of [new Map([['example.com', stored ?? '']]), new Map<string, string>()]) {
      const installs = served.size === 0 ? 1 : 0;
      const clock = new FakeClock(first.clock.now() + MINUTE);
      const h = harness(clock, new ClientDouble(clock), served);
      await h.manager.configure(settingsIn(dir));
      assert.equal(await h.clock.next(h.manager, 4 * MINUTE), undefined, 'no timer before the renewal time');
      assert.equal(h.client.issued.length, 0);
      assert.equal(h.installed.length, installs);
      assert.ok(typeof h.manager.states()[0]?.nextRenewal === 'string');
      h.manager.close();
    }
  });

  it('renews by itself at the planned time and serves the new certificate', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir));
    await h.clock.next(h.manager, 0);
    const planned = Date.parse(h.manager.states()[0]?.nextRenewal ?? '');
    assert.equal(await h.clock.next(h.manager), planned);
    assert.equal(h.client.issued.length, 2);
    assert.equal(h.installed.length, 2);
    assert.notEqual(h.installed[1]?.cert, h.installed[0]?.cert);
    assert.ok(Date.parse(h.manager.states()[0]?.nextRenewal ?? '') > planned);
  });

  it('keeps the old certificate on failure, backs off from 1 minute doubling to the cap, logs the problem at [error], and [alert]s hourly within 7 days of expiry', async () => {
    const dir = newDir();
    const clock = new FakeClock(Date.now());
    // A 90-day certificate with 3 days left: its renewal is overdue.
    const key = await generateKey('ecdsa:256');
    const cert = await certificateFor(['example.com'], key, clock.now() - 87 * DAY, clock.now() + 3 * DAY);
    const state = new AcmeStateDir(join(dir.path, 'acme_test'));
    await state.prepare();
    await state.writeCertificate('example.com', { cert, key: key.export({ type: 'pkcs8', format: 'pem' }).toString() });
    const h = harness(clock, undefined, new Map([['example.com', cert]]));
    h.client.fail = new ProblemError('urn:ietf:params:acme:error:connection', 'Connection refused');
    await h.manager.configure(settingsIn(dir, ['example.com']));
    const delays: number[] = [];
    let previous = await h.clock.next(h.manager, 0);
    assert.ok(previous !== undefined);
    for (let i = 0; i < 11; i++) {
      const at = await h.clock.next(h.manager, BACKOFF_CAP_MS);
      assert.ok(at !== undefined);
      // Alert timers fire in between: count only the orders.
      if (h.client.issued.length === delays.length + 2) {
        delays.push(at - previous);
        previous = at;
      } else i--;
    }
    assert.deepEqual(delays.slice(0, 10).map((ms) => ms / MINUTE), [1, 2, 4, 8, 16, 32, 64, 128, 256, 360]);
    assert.equal(delays[10], BACKOFF_CAP_MS);
    assert.equal(h.installed.length, 0, 'the old certificate stays served');
    const errors = h.lines.filter((l) => l.startsWith('[error]'));
    assert.ok(errors[0]?.includes('urn:ietf:params:acme:error:connection: Connection refused'), errors[0]);
    assert.ok(errors[0]?.includes('next attempt in 60s'), errors[0]);
    assert.ok(errors[0]?.includes('still serving the certificate valid until'), errors[0]);
    const alerts = h.lines.filter((l) => l.startsWith('[alert]'));
    // About one an hour over the ~17 hours of retries, not one per failure.
    const hours = (h.clock.now() - (previous - delays.reduce((a, b) => a + b, 0))) / HOUR;
    assert.ok(alerts.length >= Math.floor(hours) && alerts.length <= Math.ceil(hours) + 1, `${alerts.length} alerts over ${hours} hours`);
    assert.ok(alerts[0]?.includes('expires in') && alerts[0].includes('Connection refused'), alerts[0]);
    const status = await state.readStatus('example.com');
    assert.equal(status.failures, 12);
    assert.equal(status.lastError?.type, 'urn:ietf:params:acme:error:connection');
    // A success ends the alerts and the backoff.
    h.client.fail = undefined;
    await h.clock.next(h.manager, BACKOFF_CAP_MS + HOUR);
    while (h.installed.length === 0 && (await h.clock.next(h.manager, BACKOFF_CAP_MS + HOUR)) !== undefined);
    assert.equal(h.installed.length, 1);
    assert.equal(h.manager.states()[0]?.failures, 0);
    assert.equal((await state.readStatus('example.com')).failures, 0);
    const alertsBefore = h.lines.filter((l) => l.startsWith('[alert]')).length;
    await h.clock.next(h.manager, 2 * HOUR);
    assert.equal(h.lines.filter((l) => l.startsWith('[alert]')).length, alertsBefore);
  });

  it('waits for a Retry-After longer than the backoff, and keeps the backoff across a restart', async () => {
    const dir = newDir();
    const h = harness();
    h.client.fail = new ProblemError('urn:ietf:params:acme:error:rateLimited', 'Too many new orders', 30 * MINUTE);
    await h.manager.configure(settingsIn(dir));
    const start = await h.clock.next(h.manager, 0);
    assert.ok(start !== undefined);
    assert.equal(Date.parse(h.manager.states()[0]?.nextRenewal ?? ''), start + 30 * MINUTE);
    assert.ok(h.lines.some((l) => l.includes('rateLimited: Too many new orders') && l.includes('next attempt in 30m')));
    h.manager.close();
    const again = harness(new FakeClock(start + MINUTE));
    await again.manager.configure(settingsIn(dir));
    assert.equal(await again.clock.next(again.manager, 20 * MINUTE), undefined, 'no order before the stored next attempt');
    assert.equal(again.client.issued.length, 0);
    assert.equal(await again.clock.next(again.manager), start + 30 * MINUTE);
    assert.equal(again.client.issued.length, 1);
  });

  it('renews inside the CA renewal window (RFC 9773) with replaces', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir));
    await h.clock.next(h.manager, 0);
    const now = h.clock.now();
    h.client.window = { start: new Date(now + 2 * MINUTE), end: new Date(now + 3 * MINUTE) };
    // A reload with another contact re-plans (the issuer changed) and asks for the window.
    await h.manager.configure(settingsIn(dir, undefined, { contact: ['mailto:other@example.com'] }));
    const state = h.manager.states()[0];
    assert.equal(state?.renewalInfo, true);
    assert.equal(Date.parse(state?.nextRenewal ?? ''), now + 2.5 * MINUTE);
    assert.equal(await h.clock.next(h.manager), now + 2.5 * MINUTE);
    assert.equal(h.client.issued[1]?.replaces, `id-of-${h.installed[0]?.cert.length}`);
  });

  it('runs one order at a time per name; a reload that changes the names waits for the order in flight', async () => {
    const dir = newDir();
    const h = harness();
    let release = (): void => undefined;
    h.client.hang = new Promise<void>((resolve) => {
      release = resolve;
    });
    await h.manager.configure(settingsIn(dir));
    const timer = h.clock.next(h.manager, 0);
    for (const deadline = Date.now() + 5_000; h.client.issued.length === 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 5));
    // The same configuration again: the order in flight goes on, nothing new.
    void h.manager.configure(settingsIn(dir));
    assert.equal(h.manager.states()[0]?.ordering, true);
    // New names: the old order is aborted, the new task starts only once it settled.
    const reconfigured = h.manager.configure(settingsIn(dir, ['example.org']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.client.issued.length, 1);
    h.client.hang = undefined;
    release();
    await timer;
    await reconfigured;
    await h.clock.next(h.manager, 0);
    assert.deepEqual(h.client.issued.map((o) => o.names), [['example.com', 'www.example.com'], ['example.org']]);
    assert.deepEqual(h.installed.map((i) => i.name), ['example.org']);
    assert.deepEqual(h.manager.states().map((s) => s.name), ['example.org']);
  });

  it('answers tls-alpn-01 from the table it sends to workers', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir, ['example.com'], { challenge: 'tls-alpn-01' }));
    await h.clock.next(h.manager, 0);
    assert.deepEqual(h.tables[0], { http: {}, tlsAlpn: { 'example.com': { cert: 'cert example.com token1.thumb', key: 'key' } } });
    assert.deepEqual(h.manager.challengeTables(), { http: {}, tlsAlpn: {} });
  });

  it('re-orders when the stored certificate does not cover the configured names', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir, ['example.com']));
    await h.clock.next(h.manager, 0);
    h.manager.close();
    const again = harness(new FakeClock(h.clock.now()));
    await again.manager.configure(settingsIn(dir, ['example.com', 'api.example.com']));
    await again.clock.next(again.manager, 0);
    assert.equal(again.client.issued.length, 1);
    assert.ok(again.lines.some((l) => l.includes('does not cover "api.example.com"')));
  });

  it('stops every timer on close and orders nothing after', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir));
    await h.clock.next(h.manager, 0);
    assert.ok(h.clock.pending().length > 0);
    h.manager.close();
    assert.deepEqual(h.clock.pending(), []);
    await h.manager.configure(settingsIn(dir));
    assert.deepEqual(h.clock.pending(), []);
    assert.ok(existsSync(join(dir.path, 'acme_test', 'example.com.crt')));
  });

  it('waits beyond a Node timer\'s reach (2^31 - 1 ms) by re-arming, without ordering early', async () => {
    const dir = newDir();
    const h = harness();
    h.client.lifetimeMs = 90 * DAY;
    await h.manager.configure(settingsIn(dir));
    await h.clock.next(h.manager, 0);
    const planned = Date.parse(h.manager.states()[0]?.nextRenewal ?? '');
    assert.ok(planned - h.clock.now() > 2 * MAX_TIMER_MS);
    assert.ok(h.clock.pending().every((at) => at - h.clock.now() <= MAX_TIMER_MS));
    for (let i = 0; i < 2; i++) await h.clock.next(h.manager);
    assert.equal(h.client.issued.length, 1, 'ordered before the renewal time');
    assert.equal(await h.clock.next(h.manager), planned);
    assert.equal(h.client.issued.length, 2);
  });

  it('keeps nothing on disk with state_path off', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir, ['example.com'], { statePath: undefined }));
    await h.clock.next(h.manager, 0);
    assert.equal(h.installed.length, 1);
    assert.deepEqual(readdirSync(dir.path), []);
  });

  it('runs the dns-01 command with present and cleanup, the record name and the TXT value', async () => {
    const dir = newDir();
    const record = join(dir.path, 'calls');
    const script = dir.write('dns-hook', `#!/bin/sh\necho "$@" >> ${record}\n`);
    chmodSync(script, 0o755);
    const h = harness();
    await h.manager.configure(settingsIn(dir, ['example.com'], { challenge: 'dns-01', dnsCommand: script }));
    await h.clock.next(h.manager, 0);
    assert.equal(h.installed.length, 1);
    assert.equal(readFileSync(record, 'utf8'), 'present _acme-challenge.example.com v\ncleanup _acme-challenge.example.com v\n');
    assert.deepEqual(h.tables, [], 'dns-01 needs nothing from the workers');
  });

  it('keys a tls-alpn-01 challenge for an IP address by its reverse-mapping name (RFC 8738 section 6)', () => {
    assert.equal(tlsAlpnServerName('example.com'), 'example.com');
    assert.equal(tlsAlpnServerName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(tlsAlpnServerName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    assert.equal(tlsAlpnServerName('::1'), `1.${'0.'.repeat(31)}ip6.arpa`);
  });

  it('refuses a certificate the store would refuse, keeping the old one on disk and served', async () => {
    const dir = newDir();
    const h = harness();
    await h.manager.configure(settingsIn(dir, ['example.com']));
    await h.clock.next(h.manager, 0);
    const crt = join(dir.path, 'acme_test', 'example.com.crt');
    const before = readFileSync(crt, 'utf8');
    h.client.wrongNames = ['other.example'];
    await h.clock.next(h.manager);
    assert.equal(h.client.issued.length, 2);
    assert.equal(h.installed.length, 1);
    assert.equal(readFileSync(crt, 'utf8'), before);
    assert.ok(h.lines.some((l) => l.startsWith('[error]') && l.includes('does not cover "example.com"')), h.lines.join('\n'));
    assert.equal(h.manager.states()[0]?.failures, 1);
  });
});
