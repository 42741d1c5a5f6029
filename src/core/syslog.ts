/**
 * Logging to syslog over UDP, as nginx's src/core/ngx_syslog.c does: the `syslog:server=...`
 * form of `error_log` and `access_log`. Each message is one datagram of RFC 3164's shape,
 * `<PRI>Dec  4 02:50:00 hostname tag: message`; a lost datagram is not retried.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { hostname } from 'node:os';
import { resolveHostSync } from './hosts.js';

/** A `syslog:` target as the configuration gives it; plain data, so that it crosses to workers. */
export interface SyslogServer {
  /** An IP address (names are resolved when the configuration is read, as ngx_parse_url() does). */
  readonly address: string;
  readonly port: number;
  /** 0 (kern) to 23 (local7). */
  readonly facility: number;
  /** 0 (emerg) to 7 (debug); an error log line uses its own level instead. */
  readonly severity: number;
  readonly tag: string;
  readonly nohostname: boolean;
}

const FACILITIES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'intern', 'lpr', 'news', 'uucp', 'clock', 'authpriv', 'ftp', 'ntp',
  'audit', 'alert', 'cron', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
];
/** nginx's names, `error` and `warn` as in nginx.conf, not syslog's `err` and `warning`. */
const SEVERITIES = ['emerg', 'alert', 'crit', 'error', 'warn', 'notice', 'info', 'debug'];

/** True when an `error_log` or `access_log` target names syslog rather than a file. */
export function isSyslogTarget(target: string): boolean {
  return target.startsWith('syslog:');
}

/**
 * Parses `syslog:server=address[:port][,facility=...][,severity=...][,tag=...][,nohostname]` with
 * ngx_syslog_parse_args()'s rules and error texts; `fail` throws.
 */
export function parseSyslogTarget(spec: string, fail: (message: string) => never): SyslogServer {
  let server: { address: string; port: number } | undefined;
  let facility: number | undefined;
  let severity: number | undefined;
  let tag: string | undefined;
  let nohostname = false;
  for (const param of spec.slice('syslog:'.length).split(',')) {
    if (param.startsWith('server=')) {
      if (server !== undefined) fail('duplicate syslog "server"');
      server = parseServer(param.slice(7), fail);
    } else if (param.startsWith('facility=')) {
      if (facility !== undefined) fail('duplicate syslog "facility"');
      facility = FACILITIES.indexOf(param.slice(9));
      if (facility < 0) fail(`unknown syslog facility "${param.slice(9)}"`);
    } else if (param.startsWith('severity=')) {
      if (severity !== undefined) fail('duplicate syslog "severity"');
      severity = SEVERITIES.indexOf(param.slice(9));
      if (severity < 0) fail(`unknown syslog severity "${param.slice(9)}"`);
    } else if (param.startsWith('tag=')) {
      if (tag !== undefined) fail('duplicate syslog "tag"');
      // RFC 3164: the TAG is at most 32 alphanumeric characters.
      tag = param.slice(4);
      if (tag.length > 32) fail('syslog tag length exceeds 32');
      if (!/^[0-9A-Za-z_]*$/.test(tag)) fail('syslog "tag" only allows alphanumeric characters and underscore');
    } else if (param === 'nohostname') {
      nohostname = true;
    } else {
      fail(`unknown syslog parameter "${param}"`);
    }
  }
  if (server === undefined) fail('no syslog server specified');
  return { ...server, facility: facility ?? 23, severity: severity ?? 6, tag: tag ?? 'nginx', nohostname };
}

/** `address[:port]`, `[v6][:port]` or a name, port 514 by default, as ngx_parse_url() reads it. */
function parseServer(url: string, fail: (message: string) => never): { address: string; port: number } {
  if (url.startsWith('unix:')) {
    // Node's dgram module opens UDP sockets only: it has no AF_UNIX datagram socket for /dev/log.
    fail(`unix domain sockets in syslog server "${url}" are not supported by hitless (Node's dgram has no AF_UNIX datagram socket); use a UDP address`);
  }
  let host = url;
  let portText: string | undefined;
  if (url.startsWith('[')) {
    const end = url.indexOf(']');
    if (end < 0) fail(`invalid host in syslog server "${url}"`);
    host = url.slice(1, end);
    if (url.length > end + 1) {
      if (url[end + 1] !== ':') fail(`invalid host in syslog server "${url}"`);
      portText = url.slice(end + 2);
    }
  } else if (url.includes(':') && !isIPv6(url)) {
    host = url.slice(0, url.lastIndexOf(':'));
    portText = url.slice(url.lastIndexOf(':') + 1);
  }
  let port = 514;
  if (portText !== undefined) {
    port = /^[0-9]+$/.test(portText) ? Number(portText) : 0;
    if (port < 1 || port > 65535) fail(`invalid port in syslog server "${url}"`);
  }
  if (host === '') fail(`no host in syslog server "${url}"`);
  if (isIPv4(host) || isIPv6(host)) return { address: host, port };
  const [address] = resolveHostSync(host);
  if (address === undefined) fail(`host not found in syslog server "${url}"`);
  return { address, port };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx's `ngx_cached_syslog_time`: `Dec  4 02:50:00`, local time, the day padded with a space. */
export function formatSyslogTime(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[date.getMonth()] ?? ''} ${String(date.getDate()).padStart(2, ' ')} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** NGX_MAX_ERROR_STR: an error log message is cut there, as nginx builds it in a buffer that long. */
const MAX_ERROR_MESSAGE = 2048;

/** One syslog server at run time: a UDP socket opened on first use, not keeping the process alive. */
export class SyslogSender {
  readonly server: SyslogServer;
  /** gethostname(), lowercased, as ngx_init_cycle() keeps it for the cycle. */
  readonly #hostname = hostname().toLowerCase();
  #socket: Socket | undefined;

  constructor(server: SyslogServer) {
    this.server = server;
  }

  /**
   * Sends one message (a byte string, no trailing newline) at `severity`, the server's own when
   * undefined. `onError` hears a failed send (the access log warns, as ngx_http_log_handler() does).
   */
  send(message: string, severity?: number, onError?: (err: Error) => void): void {
    const { facility, tag, nohostname } = this.server;
    const head = `<${facility * 8 + (severity ?? this.server.severity)}>${formatSyslogTime(new Date())} ${nohostname ? '' : `${this.#hostname} `}${tag}: `;
    const socket = this.#socket ??= this.#open();
    socket.send(Buffer.from(head + message, 'latin1'), this.server.port, this.server.address, (err) => {
      if (err !== null && onError !== undefined) onError(err);
    });
  }

  /** Sends one error log line, without its newline and cut to nginx's length, at its own level. */
  sendErrorLine(line: string, severity: number): void {
    this.send(line.length > MAX_ERROR_MESSAGE ? line.slice(0, MAX_ERROR_MESSAGE) : line, severity);
  }

  #open(): Socket {
    const socket = createSocket(isIPv6(this.server.address) ? 'udp6' : 'udp4');
    // A send error reaches the callback; an 'error' event must not take the process down.
    socket.on('error', () => undefined);
    socket.unref();
    return socket;
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }
}
