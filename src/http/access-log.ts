/**
 * Access log files at run time: lines gathered during one turn of the event loop (or up to
 * `buffer=` bytes, flushed at least every `flush=`, each flush one gzip member with `gzip=`) and
 * appended with one write(2), as nginx's buffered logs are; reopened on SIGUSR1; flushed on drain
 * and close. A path with variables is opened for each line (ngx_http_log_script_write()), through
 * the `open_log_file_cache` of the level when it has one.
 */
import { closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import { errnoText } from '../core/errno.js';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import type { ErrorLog } from '../core/log.js';
import { SyslogSender, type SyslogServer } from '../core/syslog.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { AccessLogSetting, AccessLogTarget, LogEscape, LogFormat, OpenLogFileCache } from './log-module.js';
import { LogFileCache, openAppend } from './log-file-cache.js';
import { findLogFormat } from './log-module.js';
import type { HttpRequest } from './request.js';
import { toByteString } from '../core/byte-string.js';

/** nginx logs a failed write to one file at most once a minute. */
const WRITE_ERROR_INTERVAL_MS = 60_000;

/** One open access log file, shared by every `access_log` line that names it. */
export class AccessLogFile {
  readonly path: string;
  readonly #log: ErrorLog;
  #buffer: number | undefined;
  #gzip: number | undefined;
  #fd: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #lastError = 0;

  /** Opens (creating the directory if needed) for appending; throws when the file cannot be opened. */
  constructor(target: Pick<AccessLogTarget, 'path' | 'buffer' | 'gzip' | 'flush'>, log: ErrorLog) {
    this.path = target.path;
    this.#log = log;
    this.#fd = openLogFile(this.path);
    this.adoptBuffer(target);
  }

  /**
   * Buffers the file as a buffered `access_log` naming it says, unless it is buffered already: in
   * nginx the buffer belongs to the file, and every `access_log` line naming it writes through it
   * (-t refuses two buffered ones that disagree).
   */
  adoptBuffer(target: Pick<AccessLogTarget, 'buffer' | 'gzip' | 'flush'>): void {
    if (this.#buffer !== undefined || target.buffer === undefined) return;
    this.#buffer = target.buffer;
    this.#gzip = target.gzip;
    if (target.flush !== undefined) {
      this.#flushTimer = setInterval(() => this.flush(), target.flush);
      this.#flushTimer.unref();
    }
  }

  /** Queues one line (a byte string ending in a newline). */
  write(line: string): void {
    if (this.#buffer !== undefined) {
      // ngx_http_log_write(): a line that does not fit flushes the buffer; one longer than it is written alone.
      if (this.#pendingBytes + line.length > this.#buffer) this.flush();
      this.#pending.push(line);
      this.#pendingBytes += line.length;
      if (line.length > this.#buffer) this.flush();
      return;
    }
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes the lines an unbuffered log queued for the next turn now; a `buffer=` log keeps its buffer, as nginx's does. */
  settle(): void {
    if (this.#buffer === undefined) this.flush();
  }

  /** Writes every queued line now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#fd < 0) return;
    const data = this.#pending.length === 1 ? (this.#pending[0] as string) : this.#pending.join('');
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      if (this.#gzip === undefined) writeSync(this.#fd, data, null, 'latin1');
      else writeSync(this.#fd, gzipSync(Buffer.from(data, 'latin1'), { level: this.#gzip }));
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
  return value.replace(/["\\\x00-\x1f]/g, (ch) => JSON_ESCAPES[ch] ?? `\\u00${ch.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
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

/** Where a request's (or session's) error lines about its logging go, and their nginx context. */
export interface LogPathContext<C> {
  /** `$document_root` of the request, which must exist as a directory before a line is written. */
  rootOf(request: C): string | undefined;
  /** The error log of the request's level, the line's connection number and its trailing context (`, client: ...`). */
  where(request: C): { readonly log: ErrorLog | undefined; readonly connection: number; readonly context: string };
}

/** An `access_log` whose path has variables: evaluated, checked and opened for every line. */
class VariableLogPath<C> {
  readonly #path: CompiledTemplate<C>;
  readonly #cache: LogFileCache | undefined;
  readonly #context: LogPathContext<C> | undefined;
  readonly #log: ErrorLog;
  #lastError = 0;

  constructor(path: CompiledTemplate<C>, cache: LogFileCache | undefined, context: LogPathContext<C> | undefined, log: ErrorLog) {
    this.#path = path;
    this.#cache = cache;
    this.#context = context;
    this.#log = log;
  }

  write(line: string, request: C): void {
    const where = this.#context?.where(request);
    const log = where?.log ?? this.#log;
    const root = this.#context?.rootOf(request);
    if (root !== undefined) {
      // Logs are not created for a root that does not exist (ngx_http_log_script_write() tests it first).
      let failure: string | undefined;
      try {
        if (!statSync(Buffer.from(root, 'latin1')).isDirectory()) failure = '20: Not a directory';
      } catch (err) {
        failure = errnoText(err);
      }
      if (failure !== undefined) {
        log.error(`testing "${root}" existence failed (${failure})${where?.context ?? ''}`, where?.connection);
        return;
      }
    }
    const path = this.#path(request);
    try {
      if (this.#cache !== undefined) this.#cache.write(path, line);
      else {
        const fd = openAppend(path);
        try {
          writeSync(fd, line, null, 'latin1');
        } finally {
          closeSync(fd);
        }
      }
    } catch (err) {
      const opening = err instanceof Error && 'syscall' in err && err.syscall === 'open';
      if (opening) {
        log.write('crit', `${formatSyscallError('open', path, err)}${where?.context ?? ''}`, where?.connection);
        return;
      }
      const now = Date.now();
      if (now - this.#lastError < WRITE_ERROR_INTERVAL_MS) return;
      this.#lastError = now;
      log.write('alert', `${formatSyscallError('write', undefined, err).replace('write() ', `write() to "${path}" `)}${where?.context ?? ''}`, where?.connection);
    }
  }
}

/** An `access_log syslog:...`: each line is one datagram, sent at once (syslog logs are never buffered). */
class SyslogLog {
  readonly #sender: SyslogSender;
  readonly #log: ErrorLog;

  constructor(sender: SyslogSender, log: ErrorLog) {
    this.#sender = sender;
    this.#log = log;
  }

  write(line: string): void {
    // ngx_http_log_handler(): a failed send is a [warn], and the next line tries again.
    this.#sender.send(line.endsWith('\n') ? line.slice(0, -1) : line, undefined, () => this.#log.warn('send() to syslog failed'));
  }

  close(): void {
    this.#sender.close();
  }
}

/** One `access_log` line ready to run, for requests (or stream sessions, `C`). */
export interface AccessLogger<C = HttpRequest> {
  /** `settle`: an unbuffered line queued for the next turn of the event loop, written now (a path with variables writes at once). */
  readonly file: { write(line: string, request: C): void; settle?(): void };
  readonly format: CompiledTemplate<C>;
  readonly condition: CompiledTemplate<C> | undefined;
}

/** The access log files and compiled formats of one generation's http (or stream, `C`) block. */
export class AccessLogs<C = HttpRequest> {
  readonly #files = new Map<string, AccessLogFile>();
  readonly #formats = new Map<LogFormat, CompiledTemplate<C>>();
  readonly #caches = new Map<OpenLogFileCache, LogFileCache>();
  readonly #syslogs: SyslogLog[] = [];
  readonly #formatsDefined: readonly LogFormat[];
  readonly #table: VariableTable<C>;
  readonly #log: ErrorLog;
  readonly #context: LogPathContext<C> | undefined;

  /** `context` places the error lines of paths with variables; without it, they have none. */
  constructor(formats: readonly LogFormat[], table: VariableTable<C>, log: ErrorLog, context?: LogPathContext<C>) {
    this.#formatsDefined = formats;
    this.#table = table;
    this.#log = log;
    this.#context = context;
  }

  /** The loggers of one level; empty when `access_log off`. `openCache` is the level's `open_log_file_cache`. */
  compile(setting: AccessLogSetting, openCache?: OpenLogFileCache): AccessLogger<C>[] {
    if (setting.off) return [];
    return setting.targets.map((target) => {
      const file = target.syslog !== undefined ? this.#syslogFor(target.syslog)
        : target.pathTemplate === undefined ? this.#fileFor(target) : this.#variablePath(target.pathTemplate, openCache);
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

  /** A syslog server: one socket per `access_log` line, as each has its own peer in nginx. */
  #syslogFor(server: SyslogServer): SyslogLog {
    const log = new SyslogLog(new SyslogSender(server), this.#log);
    this.#syslogs.push(log);
    return log;
  }

  /** The one open file of a fixed path, shared by every `access_log` naming it. */
  #fileFor(target: AccessLogTarget): AccessLogFile {
    const shared = this.#files.get(target.path);
    if (shared !== undefined) {
      shared.adoptBuffer(target);
      return shared;
    }
    const opened = new AccessLogFile(target, this.#log);
    this.#files.set(target.path, opened);
    return opened;
  }

  /** A path with variables, through the level's `open_log_file_cache` (one cache per directive). */
  #variablePath(path: Template, openCache: OpenLogFileCache | undefined): VariableLogPath<C> {
    let cache = openCache === undefined ? undefined : this.#caches.get(openCache);
    if (openCache !== undefined && cache === undefined) {
      cache = new LogFileCache(openCache);
      this.#caches.set(openCache, cache);
    }
    return new VariableLogPath(compileTemplate(path, this.#table, { literal: toByteString }), cache, this.#context, this.#log);
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
    for (const cache of this.#caches.values()) cache.close();
    this.#caches.clear();
    for (const syslog of this.#syslogs) syslog.close();
    this.#syslogs.length = 0;
  }
}

/** Writes one request's (or session's) lines (nginx's log phase). */
export function logRequest<C>(loggers: readonly AccessLogger<C>[], request: C, now = false): void {
  for (const logger of loggers) {
    if (logger.condition !== undefined) {
      const value = logger.condition(request);
      if (value === '' || value === '0') continue;
    }
    logger.file.write(`${logger.format(request)}\n`, request);
    // An unbuffered line otherwise waits for the next turn, to share one write(2) with its neighbours.
    if (now) logger.file.settle?.();
  }
}
