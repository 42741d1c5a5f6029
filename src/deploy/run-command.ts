/**
 * Commands of a deploy (`nginx -t`, a reload, an operator's validate command) run as argument
 * lists with execFile: no shell, so a path with a space or a `;` is one argument and nothing else.
 */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { DeployError, type DeployErrorCode } from './deploy-error.js';

/** How a command ended. */
export interface CommandResult {
  readonly argv: readonly string[];
  /** Exit status; null when it was killed by a signal or a timeout. */
  readonly status: number | null;
  /** stdout and stderr, at most the last 8 KiB of each, trimmed. */
  readonly output: string;
  readonly durationMs: number;
}

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Kill the command after this many ms; default 60000. */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

const OUTPUT_LIMIT = 8192;

/** Runs `argv` and resolves with how it ended; rejects only when it cannot be started. */
export function runCommand(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined || file === '') return Promise.reject(new TypeError('runCommand() needs a program'));
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 4 * 1024 * 1024,
        encoding: 'utf8',
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (err, stdout, stderr) => {
        const output = [tail(stdout), tail(stderr)].filter((s) => s !== '').join('\n');
        const durationMs = performance.now() - started;
        if (err === null) return resolve({ argv, status: 0, output, durationMs });
        const code = (err as NodeJS.ErrnoException).code;
        if (typeof code === 'string' && code !== 'ABORT_ERR') {
          return reject(new Error(`cannot run "${file}": ${err.message}`, { cause: err }));
        }
        resolve({ argv, status: typeof code === 'number' ? code : null, output, durationMs });
      },
    );
  });
}

/** Runs `argv` and throws `code` with the command's output when it does not exit 0. */
export async function runChecked(argv: readonly string[], code: DeployErrorCode, what: string, options: RunOptions = {}): Promise<CommandResult> {
  let result: CommandResult;
  try {
    result = await runCommand(argv, options);
  } catch (err) {
    throw new DeployError(code, `${what}: ${(err as Error).message}`, { cause: err });
  }
  if (result.status !== 0) {
    const how = result.status === null ? 'was killed (timeout or signal)' : `exited with status ${result.status}`;
    throw new DeployError(code, `${what}: "${formatCommand(argv)}" ${how}${result.output === '' ? '' : `:\n${result.output}`}`);
  }
  return result;
}

function tail(text: string): string {
  const trimmed = text.trim();
  return trimmed.length <= OUTPUT_LIMIT ? trimmed : `...${trimmed.slice(-OUTPUT_LIMIT)}`;
}

/**
 * Splits a command written as one string into arguments, without a shell: words separated by
 * blanks, with '...' and "..." quoting and backslash escapes; or a JSON array of strings.
 */
export function splitCommand(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== 'string') || parsed.length === 0) {
      throw new TypeError('a command as JSON must be a non-empty array of strings');
    }
    return parsed as string[];
  }
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < trimmed.length; i++) {
    const ch = trimmed[i] as string;
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < trimmed.length) word += trimmed[++i] as string;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      word ??= '';
    } else if (ch === '\\' && i + 1 < trimmed.length) {
      word = (word ?? '') + (trimmed[++i] as string);
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (quote !== undefined) throw new TypeError(`unterminated ${quote} in command`);
  if (word !== undefined) words.push(word);
  if (words.length === 0) throw new TypeError('empty command');
  return words;
}

/** An argument list as one line for messages, quoting what needs it. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`)).join(' ');
}

/** Replaces `{name}` placeholders in each argument; unknown placeholders stay as written. */
export function fillPlaceholders(argv: readonly string[], values: Readonly<Record<string, string>>): string[] {
  return argv.map((arg) => arg.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole));
}
