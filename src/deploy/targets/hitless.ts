/**
 * The hitless target: a running hitless, reached through its admin API. No file is written and
 * nothing reloads: each deployed name is an entry of the master's certificate store.
 *
 *   compare   the store's SHA-256 of each entry (`GET /v1/certificates/{name}`)
 *   validate  hitless's own checks on the new material, storing nothing (`PUT ...` with dryRun)
 *   commit    `PUT /v1/certificates/{name}`: answered once every worker serves it
 *   restore   `POST /v1/certificates/{name}/revert`: what the name held before, or nothing
 *   reload    nothing to do
 *
 * The engine verifies on the wire as for any target, on the master's `listen ... ssl` addresses.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { AdminClient, AdminClientError, type AdminEndpoint } from '../../admin/admin-client.js';
import { describeAdminEndpoint } from '../../admin/admin-endpoint.js';
import { DeployError, type DeployErrorCode } from '../deploy-error.js';
import { splitPem } from '../../tls/material.js';
import type { CommandResult } from '../run-command.js';
import type { DeployTarget, Endpoint, FileChange, FileReport, FileRole, Placement, PrepareOptions, TargetChange } from './target.js';

/** Options of {@link HitlessTarget}. */
export interface HitlessTargetOptions {
  /** Where the admin API is. */
  readonly endpoint: AdminEndpoint;
  /** The lock file; default `<socket>.deploy-lock`, or one in the temporary directory for a TCP endpoint. */
  readonly lockPath?: string | undefined;
  /** Deadline of each admin API call, in ms; default 30000. */
  readonly timeoutMs?: number | undefined;
}

/** The path a store entry is reported under. */
const STORE = 'store:';

/** A running hitless, changed through its admin API. */
export class HitlessTarget implements DeployTarget {
  readonly kind = 'hitless';
  readonly lockPath: string;
  readonly #client: AdminClient;
  readonly #where: string;
  #endpoints: readonly Endpoint[] = [];

  constructor(options: HitlessTargetOptions) {
    const { endpoint } = options;
    this.#client = new AdminClient(endpoint, options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
    this.#where = describeAdminEndpoint(endpoint);
    this.lockPath = options.lockPath
      ?? ('socketPath' in endpoint ? `${endpoint.socketPath}.deploy-lock` : join(tmpdir(), `hitless-deploy-${endpoint.host.replace(/:/g, '_')}-${endpoint.port}.lock`));
  }

  async locateCertificate(names: readonly string[], _leaf: X509Certificate): Promise<Placement> {
    const status = await call(() => this.#client.status(), 'HITLESS_ERR_DEPLOY_IO', `Cannot reach hitless at ${this.#where}`);
    this.#endpoints = status.tlsEndpoints;
    // SNI names are case-insensitive and the store keeps them lowercase.
    const entries = [...new Set(names.map((name) => name.toLowerCase()))];
    return {
      where: `the certificate store of hitless (master ${status.pid}, ${this.#where})`,
      destinations: entries.map((name) => ({ role: 'bundle', path: `${STORE}${name}` })),
      names: [],
      wildcardNames: [],
      endpoints: status.tlsEndpoints,
      notes: status.tlsEndpoints.length === 0 ? ['hitless has no listen ... ssl: nothing to verify unless endpoints are given'] : [],
    };
  }

  async locateConfig(_path: string | undefined): Promise<Placement> {
    throw new DeployError(
      'HITLESS_ERR_DEPLOY_INPUT',
      'The hitless target deploys certificates; deploy a configuration file with --target command --validate-cmd "hitless -t -c {config}" --reload-cmd "hitless -s reload"',
    );
  }

  async prepare(changes: readonly FileChange[], _options: PrepareOptions): Promise<TargetChange> {
    return HitlessChange.open(this.#client, changes, this.#endpoints);
  }

  async reload(): Promise<undefined> {
    return undefined;
  }
}

/** One store entry being changed. */
interface EntryChange {
  readonly name: string;
  readonly cert: string;
  readonly key: string;
  readonly sha256: string;
  /** The chain served for the name before the deploy (the store's, or the configured one seen on the wire). */
  readonly previousPem: string | undefined;
  report: FileReport;
  committed: boolean;
}

class HitlessChange implements TargetChange {
  readonly #client: AdminClient;
  readonly #entries: EntryChange[];

  private constructor(client: AdminClient, entries: EntryChange[]) {
    this.#client = client;
    this.#entries = entries;
  }

  static async open(client: AdminClient, changes: readonly FileChange[], endpoints: readonly Endpoint[]): Promise<HitlessChange> {
    const entries: EntryChange[] = [];
    for (const change of changes) {
      const name = change.destination.path.slice(STORE.length);
      const text = change.data.toString('latin1');
      // The engine sends the full chain's PEM blocks, then the key's bytes as given.
      const cert = splitPem(text).filter((block) => block.label === 'CERTIFICATE').map((block) => block.pem).join('');
      const key = text.slice(cert.length);
      const sha256 = createHash('sha256').update(cert, 'latin1').update(key, 'latin1').digest('hex');
      const stored = await call(() => client.getCertificate(name), 'HITLESS_ERR_DEPLOY_IO', `Cannot read "${name}" from hitless`);
      const [endpoint] = endpoints;
      const previousPem = stored?.pem ?? (endpoint === undefined ? undefined : await servedChain(endpoint, name));
      const action = stored === undefined ? 'create' : stored.sha256 === sha256 ? 'unchanged' : 'replace';
      entries.push({ name, cert, key, sha256, previousPem, committed: false, report: { role: 'bundle', path: `${STORE}${name}`, action, mode: '0600' } });
    }
    return new HitlessChange(client, entries);
  }

  files(): readonly FileReport[] {
    return this.#entries.map((entry) => entry.report);
  }

  unchanged(): boolean {
    return this.#entries.every((entry) => entry.report.action === 'unchanged');
  }

  async backup(): Promise<void> {
    // The master keeps what each name held before its last change: `revert` puts it back.
    for (const entry of this.#entries) {
      if (entry.report.action === 'replace') entry.report = { ...entry.report, backup: `${entry.report.path} (the previous version, kept by the master)` };
    }
  }

  async stage(): Promise<void> {
    // Nothing to stage: the admin API takes the material whole, in one call per name.
  }

  async validate(): Promise<CommandResult> {
    const started = performance.now();
    for (const entry of this.#changed()) {
      await call(
        () => this.#client.putCertificate(entry.name, entry.cert, entry.key, { dryRun: true }),
        'HITLESS_ERR_DEPLOY_VALIDATE',
        `hitless refused the certificate for "${entry.name}"`,
      );
    }
    return { argv: ['hitless', 'certs', 'put', '--dry-run', ...this.#changed().map((entry) => entry.name)], status: 0, output: '', durationMs: performance.now() - started };
  }

  async commit(): Promise<void> {
    for (const entry of this.#changed()) {
      await call(() => this.#client.putCertificate(entry.name, entry.cert, entry.key), 'HITLESS_ERR_DEPLOY_IO', `hitless did not take the certificate for "${entry.name}"`);
      entry.committed = true;
    }
  }

  async restore(): Promise<void> {
    for (const entry of [...this.#entries].reverse()) {
      if (!entry.committed) continue;
      await call(() => this.#client.revertCertificate(entry.name), 'HITLESS_ERR_DEPLOY_ROLLBACK', `hitless could not revert "${entry.name}"`);
      entry.committed = false;
    }
  }

  async finish(): Promise<void> {
    // Nothing left behind: no staged file, and the master prunes nothing.
  }

  previous(role: FileRole): Buffer | undefined {
    if (role !== 'bundle') return undefined;
    const pem = this.#entries[0]?.previousPem;
    return pem === undefined ? undefined : Buffer.from(pem, 'latin1');
  }

  #changed(): EntryChange[] {
    return this.#entries.filter((entry) => entry.report.action !== 'unchanged');
  }
}

/** Runs an admin API call; its failure becomes a DeployError with `code` (the server's message kept, never key bytes). */
async function call<T>(run: () => Promise<T>, code: DeployErrorCode, what: string): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const reason = err instanceof AdminClientError ? err.message : err instanceof Error ? err.message : String(err);
    throw new DeployError(code, `${what}: ${reason}`, { cause: err });
  }
}

/** The leaf a full handshake with `name` gets now, as PEM; undefined when none can be had. */
function servedChain(endpoint: Endpoint, name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: endpoint.host, port: endpoint.port, servername: name, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const leaf = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(leaf?.toString());
    });
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('error', () => resolve(undefined));
    socket.on('close', () => resolve(undefined));
  });
}
