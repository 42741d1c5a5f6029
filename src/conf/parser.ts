/**
 * The parser: statements from the {@link Lexer} become a tree of directives, each knowing its file
 * and line, with `include` expanded in place as nginx's `ngx_conf_include()` does.
 *
 * nginx validates each directive as soon as it is read, so it reports an unknown directive on line
 * 3 before a syntax error on line 40. To report the same first error, a syntax or include error
 * does not throw here: it becomes an {@link ErrorNode} at the place it was found, and the loader
 * raises it when its walk reaches that place.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { COMMAND_LINE, ConfigError, ConfigIncludeError, ConfigSyntaxError, formatSyscallError } from '../core/errors.js';
import { expandGlob, isGlobPattern, matchGlob } from './glob.js';
import { Lexer, type Word } from './lexer.js';

/** A directive as written: `name arg1 arg2;` or `name args { ... }`. */
export interface DirectiveNode {
  readonly kind: 'directive';
  readonly name: string;
  /** Argument values after the name, unquoted and unescaped. */
  readonly args: readonly string[];
  /** The name and arguments as written, with their offsets. */
  readonly words: readonly Word[];
  readonly file: string;
  /** The line nginx reports for this directive: where its `;` or `{` stands. */
  readonly line: number;
  /** The children, when the directive opened a block. */
  readonly block: readonly ConfNode[] | undefined;
  /** For an expanded `include`: the files it brought in, in order. */
  readonly included: readonly ConfFile[] | undefined;
}

/** A syntax or include error at the place it was found; nothing after it was read. */
export interface ErrorNode {
  readonly kind: 'error';
  readonly error: ConfigError;
}

/** A node of the tree. */
export type ConfNode = DirectiveNode | ErrorNode;

/** One file that was read, with its text (for `-T`) and its top-level nodes. */
export interface ConfFile {
  readonly path: string;
  readonly text: string;
  readonly nodes: readonly ConfNode[];
}

/**
 * Where configuration files come from. The master reads the disk; a worker rebuilds the very
 * configuration the master validated from a {@link snapshotSource}, so that a file edited between
 * the two reads cannot make a worker serve something nobody checked.
 */
export interface ConfigSource {
  /** Returns a file's text or throws the system error (`ENOENT`...). */
  read(path: string): string;
  /** Expands an absolute glob(3) pattern to the sorted matching paths. */
  glob(pattern: string): string[];
  /**
   * Returns the bytes of a file a directive reads while the configuration is read (nginx's
   * ssl_password_file), or throws the system error; a FIFO is read as nginx reads it, once.
   */
  readData(path: string): Buffer;
}

/**
 * The largest configuration file read: a map or geo list of a million entries is some 40 MiB;
 * anything far beyond is a mistake (a log file named by a glob) and would take the master's memory.
 */
export const MAX_CONF_FILE_BYTES = 128 * 1024 * 1024;

/**
 * How deep blocks and includes may nest. nginx's parser recurses on the C stack with no limit of
 * its own; JavaScript's stack is smaller, and a configuration must never reach its end (a
 * RangeError with a stack trace instead of a located error). Real configurations nest a handful
 * of levels.
 */
export const MAX_CONF_DEPTH = 100;

/**
 * The disk, as nginx reads it. nginx reads a file up to its size, so a device (`/dev/null`, also
 * `/dev/zero`) reads as empty; a FIFO or a socket, whose open() would wait for a writer, is refused
 * before it is opened.
 */
export const diskSource: ConfigSource = {
  read: (path) => {
    const stat = statSync(path);
    if (stat.isCharacterDevice() || stat.isBlockDevice()) return '';
    if (!stat.isFile()) throw new ConfigSourceError(`"${path}" is not a regular file`);
    if (stat.size > MAX_CONF_FILE_BYTES) throw new ConfigSourceError(`"${path}" is too large: ${stat.size} bytes, at most ${MAX_CONF_FILE_BYTES}`);
    return readFileSync(path, 'utf8');
  },
  glob: expandGlob,
  readData: (path) => readFileSync(path),
};

/** A file the source refuses to read, with the whole message (not a system error of open()). */
export class ConfigSourceError extends Error {}

/** A file a directive read while the configuration was read, its bytes in base64 (`config.dataFiles`). */
export interface ConfigDataFile {
  readonly path: string;
  readonly base64: string;
}

function noSuchFile(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT', errno: -2 });
}

/** A source holding exactly the files of an earlier parse (`config.files` and `config.dataFiles`). */
export function snapshotSource(files: readonly { readonly path: string; readonly text: string }[], data: readonly ConfigDataFile[] = []): ConfigSource {
  const texts = new Map(files.map((file) => [file.path, file.text]));
  const bytes = new Map(data.map((file) => [file.path, file.base64]));
  return {
    read(path) {
      const text = texts.get(path);
      if (text === undefined) throw noSuchFile(path);
      return text;
    },
    glob: (pattern) => [...texts.keys()].filter((path) => matchGlob(pattern, path)).sort(),
    readData(path) {
      const base64 = bytes.get(path);
      if (base64 === undefined) throw noSuchFile(path);
      return Buffer.from(base64, 'base64');
    },
  };
}

/** Options of {@link parseConfig}. */
export interface ParseOptions {
  /** Where files are read from. Default: {@link diskSource}. */
  readonly source?: ConfigSource;
  /** Directory relative `include` paths resolve against. Default: the main file's directory. */
  readonly confPrefix?: string;
  /** Directives given with `-g`, parsed before the file as nginx does. */
  readonly params?: string;
}

/** The parsed configuration: every file read and the main-context nodes (the `-g` ones first). */
export interface ParsedConfig {
  readonly path: string;
  readonly confPrefix: string;
  /** Every file read, main file first, in the order nginx's `-T` dumps them. */
  readonly files: readonly ConfFile[];
  /** Main-context nodes: `-g` directives, then the main file's. */
  readonly nodes: readonly ConfNode[];
}

type BlockKind = 'file' | 'block' | 'param';

interface BlockResult {
  readonly nodes: ConfNode[];
  readonly failed: boolean;
}

/**
 * Parses a configuration file and everything it includes. Never throws for bad input: the first
 * error becomes an {@link ErrorNode}. Use {@link firstError} or the loader to surface it.
 */
export function parseConfig(path: string, options: ParseOptions = {}): ParsedConfig {
  const absolute = resolve(path);
  const confPrefix = options.confPrefix ?? resolve(absolute, '..');
  const state = new ParseState(confPrefix, options.source ?? diskSource);
  const nodes: ConfNode[] = [];
  if (options.params !== undefined && options.params !== '') {
    const result = state.parseText(options.params, COMMAND_LINE.file, 'param');
    for (const node of result.nodes) nodes.push(node);
    if (result.failed) return { path: absolute, confPrefix, files: state.files, nodes };
  }
  const main = state.parseFile(absolute, undefined);
  if (main.error !== undefined) nodes.push({ kind: 'error', error: main.error });
  else for (const node of main.nodes) nodes.push(node);
  return { path: absolute, confPrefix, files: state.files, nodes };
}

/** Parses configuration text that has no file of its own (tests, the admin API). */
export function parseConfigText(text: string, file = 'memory', options: ParseOptions = {}): ParsedConfig {
  const confPrefix = options.confPrefix ?? process.cwd();
  const state = new ParseState(confPrefix, options.source ?? diskSource);
  state.files.push({ path: file, text, nodes: [] });
  const result = state.parseText(text, file, 'file');
  return { path: file, confPrefix, files: state.files, nodes: result.nodes };
}

/** The first error in document order, or undefined when the configuration parsed cleanly. */
export function firstError(nodes: readonly ConfNode[]): ConfigError | undefined {
  for (const node of nodes) {
    if (node.kind === 'error') return node.error;
    const inBlock = node.block && firstError(node.block);
    if (inBlock) return inBlock;
    for (const file of node.included ?? []) {
      const inFile = firstError(file.nodes);
      if (inFile) return inFile;
    }
  }
  return undefined;
}

class ParseState {
  readonly confPrefix: string;
  readonly source: ConfigSource;
  readonly files: ConfFile[] = [];
  /** Files being parsed right now, to refuse an include cycle instead of recursing forever. */
  readonly #open: string[] = [];

  constructor(confPrefix: string, source: ConfigSource) {
    this.confPrefix = confPrefix;
    this.source = source;
  }

  parseFile(path: string, includedFrom: { file: string; line: number } | undefined, depth = 0): { nodes: ConfNode[]; error?: ConfigError; file?: ConfFile } {
    if (this.#open.includes(path)) {
      return {
        nodes: [],
        error: new ConfigIncludeError(`include cycle: "${path}" includes itself`, includedFrom),
      };
    }
    let text: string;
    try {
      text = this.source.read(path);
    } catch (err) {
      const message = err instanceof ConfigSourceError ? err.message : formatSyscallError('open', path, err);
      return { nodes: [], error: new ConfigIncludeError(message, includedFrom, { cause: err }) };
    }
    // Listed before its includes (the order of -T); its nodes are set once parsed, without a
    // spread, which a file of 200,000 lines would overflow.
    const file: { readonly path: string; readonly text: string; nodes: readonly ConfNode[] } = { path, text, nodes: [] };
    if (!this.files.some((f) => f.path === path)) this.files.push(file);
    this.#open.push(path);
    let nodes: ConfNode[];
    try {
      nodes = this.parseText(text, path, 'file', depth).nodes;
    } finally {
      this.#open.pop();
    }
    file.nodes = nodes;
    return { nodes, file };
  }

  parseText(text: string, file: string, kind: BlockKind, depth = 0): BlockResult {
    return this.#parseBlock(new Lexer(text, file, { fromParameter: kind === 'param' }), file, kind, depth);
  }

  #parseBlock(lexer: Lexer, file: string, kind: BlockKind, depth: number): BlockResult {
    const nodes: ConfNode[] = [];
    const fail = (error: ConfigError): BlockResult => {
      nodes.push({ kind: 'error', error });
      return { nodes, failed: true };
    };
    for (;;) {
      let statement;
      try {
        statement = lexer.next();
      } catch (err) {
        if (err instanceof ConfigError) return fail(err);
        throw err;
      }
      const where = { file, line: statement.line };
      if (statement.terminator === '}') {
        if (kind !== 'block') return fail(new ConfigSyntaxError('unexpected "}"', where));
        return { nodes, failed: false };
      }
      if (statement.terminator === 'eof') {
        if (kind === 'block') return fail(new ConfigSyntaxError('unexpected end of file, expecting "}"', where));
        return { nodes, failed: false };
      }
      if (statement.terminator === '{' && kind === 'param') {
        return fail(new ConfigSyntaxError('block directives are not supported in -g option', where));
      }
      const [nameWord, ...argWords] = statement.words;
      if (nameWord === undefined) throw new Error('lexer returned a statement without words');
      let block: ConfNode[] | undefined;
      let included: ConfFile[] | undefined;
      let failed = false;
      if ((statement.terminator === '{' || nameWord.value === 'include') && depth >= MAX_CONF_DEPTH) {
        return fail(new ConfigSyntaxError(`blocks and includes nested more than ${MAX_CONF_DEPTH} deep`, where));
      }
      if (statement.terminator === '{') {
        const inner = this.#parseBlock(lexer, file, 'block', depth + 1);
        block = inner.nodes;
        failed = inner.failed;
      } else if (nameWord.value === 'include' && argWords.length === 1) {
        const result = this.#include((argWords[0] as Word).value, where, depth + 1);
        included = result.files;
        failed = result.failed;
      }
      nodes.push({
        kind: 'directive',
        name: nameWord.value,
        args: argWords.map((word) => word.value),
        words: statement.words,
        file,
        line: statement.line,
        block,
        included,
      });
      if (failed) return { nodes, failed: true };
    }
  }

  /** `ngx_conf_include()`: a plain path must open; a pattern may match nothing. */
  #include(target: string, where: { file: string; line: number }, depth: number): { files: ConfFile[]; failed: boolean } {
    const path = resolve(this.confPrefix, target);
    const paths = isGlobPattern(path) ? this.source.glob(path) : [path];
    const files: ConfFile[] = [];
    for (const each of paths) {
      const result = this.parseFile(each, where, depth);
      if (result.error !== undefined) {
        files.push({ path: each, text: '', nodes: [{ kind: 'error', error: result.error }] });
        return { files, failed: true };
      }
      const file = result.file as ConfFile;
      files.push(file);
      if (firstError(file.nodes) !== undefined) return { files, failed: true };
    }
    return { files, failed: false };
  }
}
