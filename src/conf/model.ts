/**
 * The typed, deeply frozen configuration: a tree of blocks, each holding the merged value of every
 * directive allowed in its context (its own, else the inherited one, else the default).
 */
import type { ConfFile, ConfigDataFile } from './parser.js';
import type { ConfBlockView, ConfigWarning, Context, DirectiveName, DirectiveValues } from './registry.js';

/** One block of the configuration: `main`, an `http`, a `server`, a `location`... */
export class ConfBlock implements ConfBlockView {
  readonly context: Context;
  /** The directive that opened the block (`main` for the root). */
  readonly name: string;
  readonly args: readonly string[];
  /** What the block directive's parser made of its arguments (a location's match), if any. */
  readonly value: unknown;
  readonly file: string;
  readonly line: number;
  readonly parent: ConfBlock | undefined;
  readonly blocks: readonly ConfBlock[];
  readonly #values: Readonly<Record<string, unknown>>;
  readonly #own: ReadonlySet<string>;

  /** @internal Built by the loader only. */
  constructor(init: {
    context: Context;
    name: string;
    args: readonly string[];
    value: unknown;
    file: string;
    line: number;
    parent: ConfBlock | undefined;
    blocks: ConfBlock[];
    values: Record<string, unknown>;
    own: Set<string>;
  }) {
    this.context = init.context;
    this.name = init.name;
    this.args = Object.freeze([...init.args]);
    this.value = deepFreeze(init.value);
    this.file = init.file;
    this.line = init.line;
    this.parent = init.parent;
    this.blocks = init.blocks;
    this.#values = deepFreeze(init.values);
    this.#own = init.own;
  }

  /** The merged value of a directive in this block. */
  get<K extends DirectiveName>(name: K): DirectiveValues[K] {
    return this.#values[name] as DirectiveValues[K];
  }

  /** True when the directive is written in this very block (not inherited, not defaulted). */
  isSet(name: DirectiveName): boolean {
    return this.#own.has(name);
  }

  /** Child blocks opened by a directive of this name, in order (`main.children('http')`). */
  children(name: string): ConfBlock[] {
    return this.blocks.filter((block) => block.name === name);
  }

  /** The first child block of this name, if any. */
  child(name: string): ConfBlock | undefined {
    return this.blocks.find((block) => block.name === name);
  }

  /** @internal Freezes the block once its children are attached. */
  seal(): this {
    Object.freeze(this.blocks);
    return Object.freeze(this);
  }
}

/** A loaded configuration: the frozen tree and everything needed to print or reload it. */
export interface HitlessConfig {
  /** The main configuration file, absolute. */
  readonly file: string;
  /** The prefix (`-p`), absolute, with a trailing slash. */
  readonly prefix: string;
  /** The directory of the main file, which `include` resolves against. */
  readonly confPrefix: string;
  /** Every file read, in the order `-T` prints them. */
  readonly files: readonly ConfFile[];
  /** The files directives read while loading (ssl_password_file), which a worker gets from the master. */
  readonly dataFiles: readonly ConfigDataFile[];
  /** The `main` context. */
  readonly main: ConfBlock;
  /** Warnings found while loading, in document order: `-t` prints them at [warn]. */
  readonly warnings: readonly ConfigWarning[];
}

/** Freezes a value and everything reachable from it. Maps and Sets are frozen as objects only. */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof ConfBlock) return value;
  Object.freeze(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v);
  } else if (!(value instanceof RegExp)) {
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  }
  return value;
}
