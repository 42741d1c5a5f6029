/**
 * `hitless probe URL [options]`: the command-line face of runProbe. It parses flags, runs the
 * probe, prints the report and turns it into an exit code: 0 when every request got a complete
 * 2xx response, 1 when any failed (or none was sent), 2 on bad usage.
 */
import { readFile } from 'node:fs/promises';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { parseArgs } from 'node:util';
import { formatSyscallError, UsageError } from '../core/errors.js';
import { parseNumber, parseTime } from '../core/parse.js';
import { formatProbeReport, probeSucceeded } from '../probe/format-report.js';
import { PROBE_DEFAULTS, runProbe, type ProbeOptions } from '../probe/probe.js';

/** Where the command writes: the report to stdout, usage errors to stderr. */
export interface ProbeCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const USAGE =
  "usage: hitless probe URL [--duration 30s] [--concurrency 50] [--new-connections] [--requests N]\n" +
  "                         [--timeout 5s] [--header 'Name: value']... [--method GET]\n" +
  '                         [--insecure] [--cacert FILE] [--json]\n';

const HELP =
  USAGE +
  '\n' +
  'Keeps requests flowing to URL and counts every outcome; exits 1 if any request failed.\n' +
  '\n' +
  'options:\n' +
  '  --duration TIME      how long to send requests (default 30s, or until --requests are sent)\n' +
  `  --concurrency N      requests in flight at once (default ${PROBE_DEFAULTS.concurrency})\n` +
  '  --new-connections    open a new connection per request instead of keep-alive\n' +
  '  --requests N         stop after N requests\n' +
  '  --timeout TIME       deadline for one complete response (default 5s)\n' +
  "  --header 'N: v'      add a request header; repeatable (Host also sets the TLS server name)\n" +
  `  --method NAME        request method (default ${PROBE_DEFAULTS.method})\n` +
  "  --insecure           do not verify the server's certificate\n" +
  '  --cacert FILE        trust the CA certificates in FILE (PEM)\n' +
  '  --json               print the report as JSON\n' +
  'TIME is as in nginx.conf: 500ms, 5s, 1m 30s; a bare number means seconds.\n';

const OPTIONS = {
  duration: { type: 'string' },
  concurrency: { type: 'string' },
  'new-connections': { type: 'boolean' },
  requests: { type: 'string' },
  timeout: { type: 'string' },
  header: { type: 'string', multiple: true },
  method: { type: 'string' },
  insecure: { type: 'boolean' },
  cacert: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** RFC 9110 section 5.6.2: header names and methods are tokens. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs `hitless probe` with the arguments after `probe`, writing to `io`; resolves with the exit
 * code. Ctrl-C (SIGINT) or `signal` stops the probe early and still prints the report.
 */
export async function probeCommand(argv: string[], io: ProbeCommandIo, signal?: AbortSignal): Promise<number> {
  let parsed: ParsedCommand;
  try {
    parsed = parseProbeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`hitless: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    io.stdout.write(HELP);
    return 0;
  }

  let options: ProbeOptions = parsed.options;
  if (parsed.cacert !== undefined) {
    try {
      options = { ...options, ca: await readFile(parsed.cacert) };
    } catch (err) {
      io.stderr.write(`hitless: ${formatSyscallError('open', parsed.cacert, err)}\n`);
      return 2;
    }
  }

  // The first Ctrl-C stops sending and still reports what was seen; the listener is removed
  // then, so a second Ctrl-C ends the process the default way.
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  const onAbort = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) stop.abort();
  try {
    const report = await runProbe(options, stop.signal);
    io.stdout.write(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : formatProbeReport(report));
    return probeSucceeded(report) ? 0 : 1;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    // The library checks again what the parser let through; its messages name the option.
    io.stderr.write(`hitless: ${err.message}\n${USAGE}`);
    return 2;
  } finally {
    process.removeListener('SIGINT', onSigint);
    signal?.removeEventListener('abort', onAbort);
  }
}

interface ParsedCommand {
  readonly help: boolean;
  readonly json: boolean;
  readonly cacert: string | undefined;
  readonly options: ProbeOptions;
}

function parseProbeArgs(argv: string[]): ParsedCommand {
  // strict: false with tokens, so that every mistake gets hitless's own message instead of
  // parseArgs's, in nginx's voice: `invalid option: "--x"`, `option "-c" requires parameter`.
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const positionals: string[] = [];
  const values = new Map<OptionName, string[]>();
  const flags = new Set<OptionName>();
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    if (!isOptionName(token.name)) throw new UsageError(`invalid option: "${token.rawName}"`);
    const name = token.name;
    if (OPTIONS[name].type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`invalid option: "${token.rawName}=${token.value}"`);
      flags.add(name);
    } else {
      if (token.value === undefined) throw new UsageError(`option "${token.rawName}" requires parameter`);
      values.set(name, [...(values.get(name) ?? []), token.value]);
    }
  }
  if (flags.has('help')) return { help: true, json: false, cacert: undefined, options: { url: '' } };

  const [url, extra] = positionals;
  if (extra !== undefined) throw new UsageError(`invalid option: "${extra}"`);
  if (url === undefined) throw new UsageError('no URL given');
  checkUrl(url);

  const last = (name: OptionName): string | undefined => values.get(name)?.at(-1);
  const requests = optional(last('requests'), (text) => parseCount(text, '--requests'));
  const options: ProbeOptions = {
    url,
    // Without --duration, runProbe stops after 30s, or after exactly --requests however long that takes.
    durationMs: optional(last('duration'), (text) => parseDuration(text, '--duration', Infinity)),
    concurrency: optional(last('concurrency'), (text) => parseCount(text, '--concurrency')),
    newConnections: flags.has('new-connections'),
    requests,
    timeoutMs: optional(last('timeout'), (text) => parseDuration(text, '--timeout', MAX_TIMER_MS)),
    headers: parseHeaders(values.get('header') ?? []),
    method: optional(last('method'), parseMethod),
    rejectUnauthorized: !flags.has('insecure'),
  };
  return { help: false, json: flags.has('json'), cacert: last('cacert'), options };
}

function isOptionName(name: string): name is OptionName {
  return Object.hasOwn(OPTIONS, name);
}

function optional<T>(text: string | undefined, parse: (text: string) => T): T | undefined {
  return text === undefined ? undefined : parse(text);
}

function checkUrl(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`invalid option: "${text}": not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`invalid option: "${text}": the scheme must be http or https`);
  }
}

function parseCount(text: string, flag: string): number {
  const n = parseNumber(text);
  if (n === undefined || n < 1) throw new UsageError(`invalid option: "${flag} ${text}"`);
  return n;
}

function parseDuration(text: string, flag: string, max: number): number {
  const ms = parseTime(text);
  if (ms === undefined || ms <= 0 || ms > max) throw new UsageError(`invalid option: "${flag} ${text}"`);
  return ms;
}

function parseMethod(text: string): string {
  if (!TOKEN.test(text)) throw new UsageError(`invalid option: "--method ${text}"`);
  return text;
}

/** `Name: value` pairs; a repeated name is sent as repeated header lines. */
function parseHeaders(lines: readonly string[]): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    try {
      if (colon < 0 || !TOKEN.test(name)) throw new Error('not "Name: value"');
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch (err) {
      throw new UsageError(`invalid option: "--header ${line}"`, { cause: err });
    }
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name;
    headers[key] = [...(headers[key] ?? []), value];
  }
  return headers;
}
