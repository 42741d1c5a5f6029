/**
 * Access log files at run time: lines gathered during one turn of the event loop (or up to
 * `buffer=` bytes, flushed at least every `flush=`) and appended with one write(2), as nginx's
 * buffered logs are; reopened on SIGUSR1; flushed on drain and close.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import type { ErrorLog } from '../core/log.js';
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { AccessLogSetting, AccessLogTarget, LogEscape, LogFormat } from './log-module.js';
import { findLogFormat } from './log-module.js';
import type { HttpRequest } from './request.js';
import { toByteString } from '../core/byte-string.js';

/** nginx logs a failed write to one file at most once a minute. */
const WRITE_ERROR_INTERVAL_MS = 60_000;

/** One open access log file, shared by every `access_log` line that names it. */
export class AccessLogFile {
  readonly path: string;
  readonly #log: ErrorLog;
  readonly #buffer: number | undefined;
  #fd: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #lastError = 0;

  /** Opens (creating the directory if needed) for appending; throws when the file cannot be opened. */
  constructor(target: Pick<AccessLogTarget, 'path' | 'buffer' | 'flush'>, log: ErrorLog) {
    this.path = target.path;
    this.#log = log;
    this.#buffer = target.buffer;
    this.#fd = openLogFile(this.path);
    if (target.flush !== undefined) {
      this.#flushTimer = setInterval(() => this.flush(), target.flush);
      this.#flushTimer.unref();
    }
  }

  /** Queues one line (a byte string ending in a newline). */
  write(line: string): void {
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#buffer !== undefined) {
      if (this.#pendingBytes >= this.#buffer) this.flush();
      return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes every queued line now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#fd < 0) return;
    const data = this.#pending.length === 1 ? (this.#pending[0] as string) : this.#pending.join('');
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      writeSync(this.#fd, data, null, 'latin1');
    } catch (err) {
      const now = Date.now();
      if (now - this.#lastError < WRITE_ERROR_INTERVAL_MS) return;
      this.#lastError = now;
      this.#log.alert(formatSyscallError('write', undefined, err).replace('write() ', `write() to "${this.path}" `));
    }
  }

  /** Flushes, then reopens the path (after rotation) and closes the old descriptor. */
  reopen(): void {
    this.flush();
    if (this.#fd < 0) return;
    try {
      const fd = openLogFile(this.path);
      closeSync(this.#fd);
      this.#fd = fd;
    } catch (err) {
      // nginx keeps writing to the old file when the new one cannot be opened.
      this.#log.emerg(err instanceof Error ? err.message : String(err));
    }
  }

  /** Flushes and closes. */
  close(): void {
    this.flush();
    if (this.#flushTimer !== undefined) clearInterval(this.#flushTimer);
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

/** Opens for appending; a failure reads as nginx's `open() "/path" failed (13: Permission denied)`. */
function openLogFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a', 0o644);
  } catch (err) {
    throw new ConfigError(formatSyscallError('open', path, err), undefined, { cause: err });
  }
}

const HEX = '0123456789ABCDEF';

/** `escape=default`: `"`, `\`, control characters and bytes from 0x7f on become `\xHH`. */
export function escapeLogDefault(value: string): string {
  if (!/["\\\x00-\x1f\u007f-\uffff]/.test(value)) return value;
  let out = '';
  // Byte strings map one character to one byte; anything wider is text from the configuration.
  const bytes = /[\u0100-\uffff]/.test(value) ? Buffer.from(value, 'utf8') : Buffer.from(value, 'latin1');
  for (const byte of bytes) {
    out += byte === 0x22 || byte === 0x5c || byte < 0x20 || byte >= 0x7f ? `\\x${HEX[byte >> 4]}${HEX[byte & 0xf]}` : String.fromCharCode(byte);
  }
  return out;
}

const JSON_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** `escape=json`, as `ngx_escape_json()`: quotes, backslashes and control characters. */
export function escapeLogJson(value: string): string {
  return value.replace(/["\\\x00-\x1f]/g, (ch) => JSON_ESCAPES[ch] ?? `\\u00${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function compileFormat<C>(format: LogFormat, table: VariableTable<C>): CompiledTemplate<C> {
  const escapes: Record<LogEscape, ((value: string) => string) | undefined> = { default: escapeLogDefault, json: escapeLogJson, none: undefined };
  const escape = escapes[format.escape];
  return compileTemplate(format.template, table, {
    // ngx_http_log_variable(): a value that is not found is "-", except with json and none.
    notFound: format.escape === 'default' ? '-' : '',
    literal: toByteString,
    ...(escape === undefined ? {} : { escape }),
  });
}

/** One `access_log` line ready to run, for requests (or stream sessions, `C`). */
export interface AccessLogger<C = HttpRequest> {
  readonly file: AccessLogFile;
  readonly format: CompiledTemplate<C>;
  readonly condition: CompiledTemplate<C> | undefined;
}

/** The access log files and compiled formats of one generation's http (or stream, `C`) block. */
export class AccessLogs<C = HttpRequest> {
  readonly #files = new Map<string, AccessLogFile>();
  readonly #formats = new Map<LogFormat, CompiledTemplate<C>>();
  readonly #formatsDefined: readonly LogFormat[];
  readonly #table: VariableTable<C>;
  readonly #log: ErrorLog;

  constructor(formats: readonly LogFormat[], table: VariableTable<C>, log: ErrorLog) {
    this.#formatsDefined = formats;
    this.#table = table;
    this.#log = log;
  }

  /** The loggers of one level; empty when `access_log off`. */
  compile(setting: AccessLogSetting): AccessLogger<C>[] {
    if (setting.off) return [];
    return setting.targets.map((target) => {
      let file = this.#files.get(target.path);
      if (file === undefined) {
        file = new AccessLogFile(target, this.#log);
        this.#files.set(target.path, file);
      }
      const format = findLogFormat(this.#formatsDefined, target.format);
      if (format === undefined) throw new Error(`unknown log format "${target.format}"`);
      let compiled = this.#formats.get(format);
      if (compiled === undefined) {
        compiled = compileFormat(format, this.#table);
        this.#formats.set(format, compiled);
      }
      const condition = target.condition === undefined ? undefined : compileTemplate(target.condition, this.#table);
      return { file, format: compiled, condition };
    });
  }

  /** Flushes every file. */
  flush(): void {
    for (const file of this.#files.values()) file.flush();
  }

  /** Reopens every file (SIGUSR1). */
  reopen(): void {
    for (const file of this.#files.values()) file.reopen();
  }

  /** Flushes and closes every file. */
  close(): void {
    for (const file of this.#files.values()) file.close();
    this.#files.clear();
  }
}

/** Writes one request's (or session's) lines (nginx's log phase). */
export function logRequest<C>(loggers: readonly AccessLogger<C>[], request: C): void {
  for (const logger of loggers) {
    if (logger.condition !== undefined) {
      const value = logger.condition(request);
      if (value === '' || value === '0') continue;
    }
    logger.file.write(`${logger.format(request)}\n`);
  }
}
