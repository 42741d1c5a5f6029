/**
 * One `acme_issuer` at run time: its state directory, account key, client and account, made once
 * and shared by its certificates; and the private keys the manager generates.
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { AcmeStateDir } from './state.js';
import { resolverLookup } from './resolver-lookup.js';
import type { AcmeDependencies, AcmeIssuerSettings, AcmeProtocolClient } from './manager-types.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** One issuer: its state directory, account key, client and account, made once and shared by its certificates. */
export class AcmeIssuerRuntime {
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
    return this.#dependencies.createClient({
      directoryUrl: settings.uri,
      accountKey,
      verify: settings.verify,
      ...(ca === undefined ? {} : { ca }),
      ...(settings.resolver === undefined ? {} : { lookup: resolverLookup(settings.resolver) }),
    });
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
