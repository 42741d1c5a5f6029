/**
 * Errors with stable codes. A code, once published, keeps its meaning; a retired code is never
 * reused for something else.
 */

import { errnoMessage } from './errno.js';

/** Every stable error code hitless emits. */
export type ErrorCode =
  | 'HITLESS_ERR_CONFIG'
  | 'HITLESS_ERR_CONFIG_SYNTAX'
  | 'HITLESS_ERR_CONFIG_INCLUDE'
  | 'HITLESS_ERR_USAGE'
  | 'HITLESS_ERR_SIGNAL'
  | 'HITLESS_ERR_PROCESS'
  | 'HITLESS_ERR_TLS_CERTIFICATE'
  | 'HITLESS_ERR_DEPLOY_INPUT'
  | 'HITLESS_ERR_DEPLOY_LOCK'
  | 'HITLESS_ERR_DEPLOY_IO'
  | 'HITLESS_ERR_DEPLOY_VALIDATE'
  | 'HITLESS_ERR_DEPLOY_RELOAD'
  | 'HITLESS_ERR_DEPLOY_VERIFY'
  | 'HITLESS_ERR_DEPLOY_ROLLBACK'
  | 'HITLESS_ERR_CERT_REFUSED'
  | 'HITLESS_ERR_CERT_NOT_FOUND'
  | 'HITLESS_ERR_CERT_STORE'
  | 'HITLESS_ERR_CERT_INPUT'
  | 'HITLESS_ERR_ADMIN'
  | 'HITLESS_ERR_ACME';

/** The base of every error hitless throws on purpose. */
export class HitlessError extends Error {
  /** Stable, documented code, for programs to branch on. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Where a configuration error was found: a file and line, or the `-g` command line. */
export interface ConfigLocation {
  readonly file: string;
  readonly line: number;
}

/** The location nginx prints for directives given with `-g`. */
export const COMMAND_LINE: ConfigLocation = Object.freeze({ file: 'command line', line: 0 });

/** Formats a location as nginx does: `in /path/nginx.conf:12`, or `in command line`. */
export function formatLocation(location: ConfigLocation): string {
  return location.file === COMMAND_LINE.file || location.line === 0
    ? `in ${location.file}`
    : `in ${location.file}:${location.line}`;
}

/**
 * A configuration that cannot be loaded. `message` is the full nginx-style line
 * (`unknown directive "x" in /etc/hitless/hitless.conf:3`); `reason` is the part before the location.
 */
export class ConfigError extends HitlessError {
  /** The message without its location, as a directive handler would phrase it. */
  readonly reason: string;
  /** Where the problem is, if known. */
  readonly location: ConfigLocation | undefined;
  /** The error log level nginx would use: `emerg` for almost everything. */
  readonly level: 'emerg' | 'alert' | 'crit';
  /** What to do instead, for a directive nginx removed: hitless's own line after nginx's message. */
  readonly hint: string | undefined;

  constructor(
    reason: string,
    location: ConfigLocation | undefined,
    options?: ErrorOptions & { code?: ErrorCode; level?: 'emerg' | 'alert' | 'crit'; hint?: string | undefined },
  ) {
    super(
      options?.code ?? 'HITLESS_ERR_CONFIG',
      location ? `${reason} ${formatLocation(location)}` : reason,
      options,
    );
    this.reason = reason;
    this.location = location;
    this.level = options?.level ?? 'emerg';
    this.hint = options?.hint;
  }
}

/** A lexical or structural error in a configuration file: `unexpected "}"` and its kin. */
export class ConfigSyntaxError extends ConfigError {
  constructor(reason: string, location: ConfigLocation, options?: ErrorOptions) {
    super(reason, location, { ...options, code: 'HITLESS_ERR_CONFIG_SYNTAX' });
  }
}

/** An `include` that cannot be read or that includes itself. */
export class ConfigIncludeError extends ConfigError {
  constructor(reason: string, location: ConfigLocation | undefined, options?: ErrorOptions) {
    super(reason, location, { ...options, code: 'HITLESS_ERR_CONFIG_INCLUDE' });
  }
}

/** A command line that cannot be understood (`invalid option: "x"`). */
export class UsageError extends HitlessError {
  constructor(message: string, options?: ErrorOptions) {
    super('HITLESS_ERR_USAGE', message, options);
  }
}

/** Formats a system call failure as nginx does: `open() "/x" failed (2: No such file or directory)`. */
export function formatSyscallError(call: string, path: string | undefined, err: unknown): string {
  const errno = err instanceof Error && 'errno' in err && typeof err.errno === 'number' ? Math.abs(err.errno) : 0;
  const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
  const what = path === undefined ? `${call}() failed` : `${call}() "${path}" failed`;
  return `${what} (${errno}: ${describeErrno(code, err)})`;
}

function describeErrno(code: string, err: unknown): string {
  return errnoMessage(code) ?? (err instanceof Error ? err.message : String(err));
}
