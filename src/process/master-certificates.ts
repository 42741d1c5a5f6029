/**
 * The master's side of live certificate rotation: it owns the {@link CertificateStore}, checks and
 * persists what the admin API puts, then tells every worker and answers only once each one uses it.
 * Changes are serialised: a second put waits for the first to reach every worker.
 */
import type { ErrorLog } from '../core/log.js';
import type { CertificatePutResult } from '../admin/admin-server.js';
import { HitlessError } from '../core/errors.js';
import { CertificateNotFoundError, CertificateStore, checkCertificate, summaryOf, type CertificateDetail, type CertificateSummary, type StoredCertificate } from '../tls/certificate-store.js';
import type { CertificateMessage } from './ipc.js';
import type { WorkerProcess } from './worker-process.js';

/** The certificates of the master and their way to the workers. */
export class MasterCertificates {
  #store: CertificateStore;
  #seq = 0;
  /** What each name held before its last change (null: nothing), for {@link revert}. */
  readonly #previous = new Map<string, StoredCertificate | null>();
  #queue: Promise<unknown> = Promise.resolve();
  readonly #workers: () => Iterable<WorkerProcess>;

  /** Loads the store in `dir`, logging each file it skips; `workers` lists the live workers. */
  constructor(dir: string, log: ErrorLog, workers: () => Iterable<WorkerProcess>) {
    this.#workers = workers;
    this.#store = loadStore(dir, log);
  }

  /** A reload that names another `certificate_store` directory reads that one; the same directory is kept. */
  useDirectory(dir: string, log: ErrorLog): void {
    if (dir === this.#store.dir) return;
    log.notice(`using the certificate store "${dir}"`);
    this.#store = loadStore(dir, log);
  }

  /** Every stored certificate, with keys: what a new worker is sent. */
  entries(): StoredCertificate[] {
    return this.#store.list();
  }

  /** Summaries of every stored certificate. */
  list(): CertificateSummary[] {
    return this.#store.list().map(summaryOf);
  }

  /** The summary of one, with its certificate chain (public) as PEM; throws {@link CertificateNotFoundError}. */
  get(name: string): CertificateDetail {
    const stored = this.#store.get(name);
    if (stored === undefined) throw new CertificateNotFoundError(name);
    return { ...summaryOf(stored), pem: stored.cert };
  }

  /**
   * Checks, persists and distributes a certificate and key for `name`; with `dryRun`, only checks.
   * Throws CertificateRefusedError before anything changes when a check fails.
   */
  put(name: string, cert: string, key: string, options: { force: boolean; dryRun: boolean }, log: ErrorLog): Promise<CertificatePutResult> {
    const checked = checkCertificate(name, cert, key, { force: options.force });
    if (options.dryRun) {
      return Promise.resolve({ certificate: checked.summary, replaced: this.#store.get(name) !== undefined, dryRun: true, warnings: checked.warnings });
    }
    return this.#serialise(async () => {
      const before = this.#store.get(name) ?? null;
      const replaced = await this.#store.put(checked.stored);
      this.#previous.set(name, before);
      await this.#broadcast({ type: 'cert-put', seq: ++this.#seq, certificate: checked.stored });
      log.notice(`certificate "${name}" ${replaced ? 'replaced' : 'added'}: ${checked.summary.fingerprint256}, valid until ${checked.summary.notAfter}`);
      for (const warning of checked.warnings) log.warn(`certificate "${name}": ${warning}`);
      return { certificate: checked.summary, replaced, dryRun: false, warnings: checked.warnings };
    });
  }

  /** Removes `name` from the store and every worker; throws {@link CertificateNotFoundError}. */
  delete(name: string, log: ErrorLog): Promise<void> {
    return this.#serialise(async () => {
      const before = this.#store.get(name) ?? null;
      await this.#store.delete(name);
      this.#previous.set(name, before);
      await this.#broadcast({ type: 'cert-delete', seq: ++this.#seq, name });
      log.notice(`certificate "${name}" deleted`);
    });
  }

  /**
   * Puts back what `name` held before its last put or delete (a certificate, or none), as a deploy
   * rolls back; the master keeps one step of history per name, in memory. Returns the summary of
   * what is stored now, or undefined when the name is no longer stored.
   */
  revert(name: string, log: ErrorLog): Promise<CertificateSummary | undefined> {
    return this.#serialise(async () => {
      const previous = this.#previous.get(name);
      if (previous === undefined) throw new HitlessError('HITLESS_ERR_CERT_NOT_FOUND', `Nothing to revert for "${name}": it was not changed since the master started`);
      const current = this.#store.get(name) ?? null;
      if (previous === null) {
        if (current !== null) {
          await this.#store.delete(name);
          await this.#broadcast({ type: 'cert-delete', seq: ++this.#seq, name });
        }
      } else {
        await this.#store.put(previous);
        await this.#broadcast({ type: 'cert-put', seq: ++this.#seq, certificate: previous });
      }
      this.#previous.set(name, current);
      log.notice(`certificate "${name}" reverted to ${previous === null ? 'none (the configured certificate)' : summaryOf(previous).fingerprint256}`);
      return previous === null ? undefined : summaryOf(previous);
    });
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Every worker, starting or draining too: a draining worker still finishes handshakes. */
  async #broadcast(message: CertificateMessage): Promise<void> {
    await Promise.all([...this.#workers()].map((worker) => worker.certificate(message)));
  }
}

function loadStore(dir: string, log: ErrorLog): CertificateStore {
  const store = new CertificateStore(dir);
  try {
    for (const problem of store.load()) log.error(problem);
  } catch (err) {
    log.error((err as Error).message);
  }
  return store;
}
