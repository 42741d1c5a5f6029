/**
 * The command target: any server, described by its files and two commands. The validate command
 * sees the staged files through placeholders (`{cert}`, `{key}`, `{chain}`, `{bundle}`,
 * `{config}`), the reload command makes the server read the live ones. Both run without a shell.
 */
import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { DeployError } from '../deploy-error.js';
import { FileChangeSet } from '../file-change.js';
import { fillPlaceholders, runChecked, type CommandResult } from '../run-command.js';
import type { DeployTarget, Destination, FileChange, FileRole, Placement, PrepareOptions, TargetChange } from './target.js';

/** Options of {@link CommandTarget}. */
export interface CommandTargetOptions {
  /** Where the certificate goes (with its chain, unless `chainPath` is given). */
  readonly certPath?: string | undefined;
  /** Where the private key goes. */
  readonly keyPath?: string | undefined;
  /** Where the chain goes, when the server wants it in a file of its own; default with the certificate. */
  readonly chainPath?: string | undefined;
  /** The configuration file of configuration deploys. */
  readonly configPath?: string | undefined;
  /** Checks the staged files; placeholders name them. Default: no check beyond preflight. */
  readonly validateCommand?: readonly string[] | undefined;
  /** Makes the server read the live files; required. */
  readonly reloadCommand: readonly string[];
  /** The lock file; default `<first destination>.hitless-lock`. */
  readonly lockPath?: string | undefined;
  /** Deadline of each command, in ms; default 60000. */
  readonly commandTimeoutMs?: number | undefined;
}

/** The placeholder each role is known by in the validate command. */
const PLACEHOLDER: Readonly<Record<FileRole, string>> = { certificate: 'cert', chain: 'chain', key: 'key', bundle: 'bundle', config: 'config' };

/** A server this tool knows only through files and commands. */
export class CommandTarget implements DeployTarget {
  readonly kind = 'command';
  readonly lockPath: string;
  readonly #options: CommandTargetOptions;

  constructor(options: CommandTargetOptions) {
    if (options.reloadCommand.length === 0) throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'The command target needs a reload command');
    this.#options = options;
    const first = options.certPath ?? options.configPath ?? options.keyPath;
    if (options.lockPath === undefined && first === undefined) {
      throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'The command target needs destination paths');
    }
    this.lockPath = resolve(options.lockPath ?? `${first as string}.hitless-lock`);
  }

  async locateCertificate(_names: readonly string[], _leaf: X509Certificate): Promise<Placement> {
    const { certPath, keyPath, chainPath } = this.#options;
    if (certPath === undefined || keyPath === undefined) {
      throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'The command target needs a certificate path and a key path');
    }
    const destinations: Destination[] = [
      { role: 'certificate', path: resolve(certPath) },
      ...(chainPath === undefined ? [] : [{ role: 'chain' as const, path: resolve(chainPath) }]),
      { role: 'key', path: resolve(keyPath) },
    ];
    if (new Set(destinations.map((d) => d.path)).size !== destinations.length) {
      throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'The certificate, chain and key paths must differ');
    }
    return { where: resolve(certPath), destinations, names: [], wildcardNames: [], endpoints: [], notes: [] };
  }

  async locateConfig(path: string | undefined): Promise<Placement> {
    const destination = path ?? this.#options.configPath;
    if (destination === undefined) throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'The command target needs the configuration file path');
    const absolute = resolve(destination);
    return { where: absolute, destinations: [{ role: 'config', path: absolute }], names: [], wildcardNames: [], endpoints: [], notes: [] };
  }

  async prepare(changes: readonly FileChange[], options: PrepareOptions): Promise<TargetChange> {
    const roles = new Map(changes.map((change) => [change.destination.path, change.destination.role]));
    return FileChangeSet.open(changes, options, (staged, signal) => this.#validate(staged, roles, signal));
  }

  async #validate(staged: ReadonlyMap<string, string>, roles: ReadonlyMap<string, FileRole>, signal?: AbortSignal): Promise<CommandResult | undefined> {
    const { validateCommand } = this.#options;
    if (validateCommand === undefined) return undefined;
    const values: Record<string, string> = {};
    for (const [live, path] of staged) {
      const role = roles.get(live);
      if (role !== undefined) values[PLACEHOLDER[role]] = path;
    }
    return runChecked(fillPlaceholders(validateCommand, values), 'HITLESS_ERR_DEPLOY_VALIDATE', 'The validate command refused the staged files', {
      timeoutMs: this.#options.commandTimeoutMs,
      signal,
    });
  }

  async reload(signal?: AbortSignal): Promise<CommandResult> {
    return runChecked(this.#options.reloadCommand, 'HITLESS_ERR_DEPLOY_RELOAD', 'The reload failed', {
      timeoutMs: this.#options.commandTimeoutMs,
      signal,
    });
  }
}
