/**
 * The tokenizer of nginx's configuration language, a faithful port of `ngx_conf_read_token()` in
 * nginx's src/core/ngx_conf_file.c, so that every input nginx accepts is read the same way and
 * every input it refuses is refused with the same words and line.
 */
import { ConfigSyntaxError } from '../core/errors.js';

/** One argument of a directive as written: its unescaped value and where it stands in the file. */
export interface Word {
  /** The value with quotes removed and `\"`, `\'`, `\\`, `\t`, `\r`, `\n` unescaped. */
  readonly value: string;
  /** True when the word was written in single or double quotes. */
  readonly quoted: boolean;
  /** Line of the word's first character (1-based). */
  readonly line: number;
  /** Offset of the first character of the word as written (its opening quote, if any). */
  readonly start: number;
  /** Offset just past the word as written (past its closing quote, if any). */
  readonly end: number;
}

/** What ended a statement: `;`, `{` (a block starts), `}` (a block ends), or the end of input. */
export type Terminator = ';' | '{' | '}' | 'eof';

/** A statement: the words before its terminator, and the line the terminator was read on. */
export interface Statement {
  readonly words: readonly Word[];
  readonly terminator: Terminator;
  /** The line nginx reports for this statement: the line where its terminator was read. */
  readonly line: number;
  /** Offset just past the terminator. */
  readonly end: number;
}

const LF = 0x0a;

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
}

/**
 * Reads statements one at a time, as nginx does. `fromParameter` selects the `-g` flavour, which
 * words its end-of-input error differently.
 */
export class Lexer {
  readonly #text: string;
  readonly #file: string;
  readonly #fromParameter: boolean;
  #pos = 0;
  #line = 1;

  constructor(text: string, file: string, options: { fromParameter?: boolean } = {}) {
    this.#text = text;
    this.#file = file;
    this.#fromParameter = options.fromParameter ?? false;
  }

  /** The current line, as nginx's `cf->conf_file->line`. */
  get line(): number {
    return this.#line;
  }

  #error(reason: string): ConfigSyntaxError {
    return new ConfigSyntaxError(reason, { file: this.#file, line: this.#line });
  }

  /** Reads the next statement, or throws a {@link ConfigSyntaxError} exactly where nginx would. */
  next(): Statement {
    const text = this.#text;
    const words: Word[] = [];
    let needSpace = false;
    let lastSpace = true;
    let sharpComment = false;
    let variable = false;
    let quoted = false;
    let sQuoted = false;
    let dQuoted = false;
    let start = this.#pos;
    let startLine = this.#line;
    let wordQuoted = false;

    for (;;) {
      if (this.#pos >= text.length) {
        if (words.length > 0 || !lastSpace) {
          throw this.#error(
            this.#fromParameter
              ? 'unexpected end of parameter, expecting ";"'
              : 'unexpected end of file, expecting ";" or "}"',
          );
        }
        return { words, terminator: 'eof', line: this.#line, end: this.#pos };
      }

      const code = text.charCodeAt(this.#pos);
      const ch = text[this.#pos++] as string;

      if (code === LF) {
        this.#line++;
        if (sharpComment) sharpComment = false;
      }

      if (sharpComment) continue;

      if (quoted) {
        quoted = false;
        continue;
      }

      if (needSpace) {
        if (isSpace(ch)) {
          lastSpace = true;
          needSpace = false;
          continue;
        }
        if (ch === ';') return { words, terminator: ';', line: this.#line, end: this.#pos };
        if (ch === '{') return { words, terminator: '{', line: this.#line, end: this.#pos };
        if (ch === ')') {
          lastSpace = true;
          needSpace = false;
        } else {
          throw this.#error(`unexpected "${ch}"`);
        }
      }

      if (lastSpace) {
        start = this.#pos - 1;
        startLine = this.#line;
        wordQuoted = false;

        if (isSpace(ch)) continue;

        switch (ch) {
          case ';':
          case '{':
            if (words.length === 0) throw this.#error(`unexpected "${ch}"`);
            return { words, terminator: ch, line: this.#line, end: this.#pos };
          case '}':
            if (words.length !== 0) throw this.#error('unexpected "}"');
            return { words, terminator: '}', line: this.#line, end: this.#pos };
          case '#':
            sharpComment = true;
            continue;
          case '\\':
            quoted = true;
            lastSpace = false;
            continue;
          case '"':
            start++;
            dQuoted = true;
            wordQuoted = true;
            lastSpace = false;
            continue;
          case "'":
            start++;
            sQuoted = true;
            wordQuoted = true;
            lastSpace = false;
            continue;
          case '$':
            variable = true;
            lastSpace = false;
            continue;
          default:
            lastSpace = false;
        }
      } else {
        if (ch === '{' && variable) continue;
        variable = false;

        if (ch === '\\') {
          quoted = true;
          continue;
        }
        if (ch === '$') {
          variable = true;
          continue;
        }

        let found = false;
        if (dQuoted) {
          if (ch === '"') {
            dQuoted = false;
            needSpace = true;
            found = true;
          }
        } else if (sQuoted) {
          if (ch === "'") {
            sQuoted = false;
            needSpace = true;
            found = true;
          }
        } else if (isSpace(ch) || ch === ';' || ch === '{') {
          lastSpace = true;
          found = true;
        }

        if (found) {
          const raw = text.slice(start, this.#pos - 1);
          words.push({
            value: unescape(raw),
            quoted: wordQuoted,
            line: startLine,
            start: wordQuoted ? start - 1 : start,
            end: wordQuoted ? this.#pos : this.#pos - 1,
          });
          if (ch === ';' || ch === '{') {
            return { words, terminator: ch, line: this.#line, end: this.#pos };
          }
        }
      }
    }
  }
}

/** nginx unescapes only `\"`, `\'`, `\\`, `\t`, `\r` and `\n`; any other backslash stays as written. */
function unescape(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] as string;
    if (ch === '\\' && i + 1 < raw.length) {
      const next = raw[i + 1] as string;
      if (next === '"' || next === "'" || next === '\\') {
        out += next;
        i++;
        continue;
      }
      if (next === 't' || next === 'r' || next === 'n') {
        out += next === 't' ? '\t' : next === 'r' ? '\r' : '\n';
        i++;
        continue;
      }
    }
    out += ch;
  }
  return out;
}

/** True when `value` holds an nginx variable reference (`$name` or `${name}`). */
export function hasVariables(value: string): boolean {
  return /\$(?:[A-Za-z0-9_]|\{)/.test(value);
}
