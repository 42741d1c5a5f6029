/**
 * The master's ACME: the {@link AcmeManager} built from each loaded configuration
 * (`acmeSettingsOf`), with the real protocol client, issuing into the master's certificate store
 * through {@link MasterCertificates.put} (the admin API's checks) and sending the challenge tables
 * to every worker. Made only once a configuration has an `acme_certificate`; a reload re-plans it.
 */
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';
import { acmeSettingsOf, type AcmeSettings } from '../acme/acme-config.js';
import { tlsAlpnCertificate } from '../acme/challenge-certificate.js';
import { AcmeClient, certificateIdentifier } from '../acme/client.js';
import { VERSION } from '../core/version.js';
import { AcmeManager, type AcmeChallengeTables, type AcmeDependencies, type AcmeNameState } from '../acme/manager.js';
import type { MasterCertificates } from './master-certificates.js';

/** The real protocol: src/acme/client.ts against the issuer's directory. */
export const ACME_DEPENDENCIES: AcmeDependencies = {
  createClient: (settings) => new AcmeClient({ ...settings, userAgent: `hitless/${VERSION}` }),
  certificateIdentifier,
  tlsAlpnCertificate,
};

/** What {@link MasterAcme} needs of the master. */
export interface MasterAcmeOptions {
  /** The master's current error log. */
  readonly log: () => ErrorLog;
  readonly certificates: MasterCertificates;
  /** Sends the whole tables to every live worker; settles once each one answers from them. */
  readonly publish: (tables: AcmeChallengeTables) => Promise<void>;
  /** Default {@link ACME_DEPENDENCIES}. */
  readonly dependencies?: AcmeDependencies;
}

/** The master's ACME manager, made on the first configuration that needs one. */
export class MasterAcme {
  readonly #options: MasterAcmeOptions;
  #manager: AcmeManager | undefined;
  #closed = false;

  constructor(options: MasterAcmeOptions) {
    this.#options = options;
  }

  /** Starts or re-plans the ACME certificates of `config`; errors are logged, never thrown. */
  configure(config: HitlessConfig): void {
    if (this.#closed) return;
    let settings: AcmeSettings;
    try {
      // Its warnings were printed when the configuration was loaded (acme-module.ts's check).
      settings = acmeSettingsOf(config);
    } catch (err) {
      this.#options.log().alert(`acme: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.#manager === undefined && settings.certificates.length === 0) return;
    this.#manager ??= this.#create();
    this.#manager.configure(settings).catch((err: unknown) => this.#options.log().alert(`acme: ${err instanceof Error ? err.message : String(err)}`));
  }

  #create(): AcmeManager {
    const { certificates, log } = this.#options;
    return new AcmeManager({
      dependencies: this.#options.dependencies ?? ACME_DEPENDENCIES,
      log,
      install: async (name, cert, key) => {
        await certificates.put(name, cert, key, { force: false, dryRun: false }, log());
      },
      served: (name) => certificates.entries().find((entry) => entry.name === name)?.cert,
      publishChallenges: this.#options.publish,
    });
  }

  /** The challenge tables a new worker starts with. */
  challengeTables(): AcmeChallengeTables {
    return this.#manager?.challengeTables() ?? { http: {}, tlsAlpn: {} };
  }

  /** Every ACME name's state, for the admin API. */
  states(): AcmeNameState[] {
    return this.#manager?.states() ?? [];
  }

  /** Stops every timer and order: the master exits. */
  close(): void {
    this.#closed = true;
    this.#manager?.close();
  }
}
