/**
 * What a deploy target provides to the engine. The engine owns the order (lock, preflight,
 * compare, backup, stage, validate, commit, reload, verify, roll back); a target answers where
 * things go, how a change is staged and checked, and how the server picks it up.
 *
 * nginx and command targets write files, and share {@link FileChangeSet} for it. The hitless
 * target implements {@link DeployTarget.prepare} against the admin API instead (check with a dry
 * run, put into the certificate store, revert to roll back) and makes `reload` a no-op: the engine
 * does not care where the bytes go.
 */
import type { X509Certificate } from 'node:crypto';
import type { CommandResult } from '../run-command.js';

/**
 * What a destination receives: the certificate (with its chain, unless the chain has a file of
 * its own), the chain, the key, all three in one file (nginx given the same path for
 * ssl_certificate and ssl_certificate_key), or a configuration file.
 */
export type FileRole = 'certificate' | 'chain' | 'key' | 'bundle' | 'config';

/** True for destinations that hold a private key: created and backed up 0600, never digested in reports. */
export function isSecretRole(role: FileRole): boolean {
  return role === 'key' || role === 'bundle';
}

/** One file a deploy writes. */
export interface Destination {
  readonly role: FileRole;
  /** Absolute path. */
  readonly path: string;
}

/** A TLS or HTTP endpoint to verify on the wire. */
export interface Endpoint {
  /** Address or host name to connect to; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

/** Where a deploy goes on a target, as the target found it. */
export interface Placement {
  /** For people: `server "a.test" in /etc/nginx/sites-enabled/a.conf:3`. */
  readonly where: string;
  readonly destinations: readonly Destination[];
  /** Exact names served by the same place: the certificate must cover them too. */
  readonly names: readonly string[];
  /** Wildcard and regex names served by the same place, checked where possible, never refused. */
  readonly wildcardNames: readonly string[];
  /** Endpoints that serve this place (nginx: the vhost's `listen ... ssl`). */
  readonly endpoints: readonly Endpoint[];
  /** Things the operator should know (a shared file, an inherited directive). */
  readonly notes: readonly string[];
}

/** One new content for one destination. */
export interface FileChange {
  readonly destination: Destination;
  readonly data: Buffer;
}

/** What happened to one destination, for the report. Key files carry no digest. */
export interface FileReport {
  readonly role: FileRole;
  readonly path: string;
  /** The file actually written when `path` is a symbolic link. */
  readonly written?: string;
  /** `create` when the destination did not exist, `replace` when it differed. */
  readonly action: 'unchanged' | 'create' | 'replace';
  /** SHA-256 of the new content, hex; absent for files holding a key. */
  readonly sha256?: string;
  /** Where the previous content was saved. */
  readonly backup?: string;
  /** The permission bits the file has after the deploy, octal text (`0640`). */
  readonly mode: string;
}

/** Options the engine passes to {@link DeployTarget.prepare}. */
export interface PrepareOptions {
  /** Backups of each file to keep; default 5. */
  readonly keepBackups: number;
  /** Timestamp for backup names. */
  readonly now: Date;
}

/** A change being made to a target, step by step; the engine calls these in order. */
export interface TargetChange {
  /** Each destination's state, updated as the steps run. */
  files(): readonly FileReport[];
  /** True when every destination already holds exactly the new content (the deploy is a no-op). */
  unchanged(): boolean;
  /** Saves what each destination holds now. */
  backup(): Promise<void>;
  /** Writes the new content beside the live one, not yet visible to the server. */
  stage(): Promise<void>;
  /** Runs the target's checker against the staged content; undefined when the target has none. */
  validate(signal?: AbortSignal): Promise<CommandResult | undefined>;
  /** Makes the staged content live (renames). */
  commit(): Promise<void>;
  /** Puts back what was live before {@link commit}; a no-op for destinations not yet committed. */
  restore(): Promise<void>;
  /** Removes staged leftovers; after a success, prunes old backups. */
  finish(succeeded: boolean): Promise<void>;
  /** What the destination with this role held before the deploy. */
  previous(role: FileRole): Buffer | undefined;
}

/** A server a deploy can go to. */
export interface DeployTarget {
  /** `nginx`, `hitless`, `command`. */
  readonly kind: string;
  /** The lock that serialises deploys to this target. */
  readonly lockPath: string;
  /** Finds where a certificate for `names` goes; throws HITLESS_ERR_DEPLOY_INPUT if nowhere. */
  locateCertificate(names: readonly string[], leaf: X509Certificate): Promise<Placement>;
  /** Finds where a configuration file goes; `path` defaults to the target's main file. */
  locateConfig(path: string | undefined): Promise<Placement>;
  /** Starts a change of the given destinations. */
  prepare(changes: readonly FileChange[], options: PrepareOptions): Promise<TargetChange>;
  /** Makes the server pick up the live files; throws HITLESS_ERR_DEPLOY_RELOAD. */
  reload(signal?: AbortSignal): Promise<CommandResult | undefined>;
}
