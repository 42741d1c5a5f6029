/**
 * The directive registry. Every module declares its directives in a table, as nginx's modules do
 * with `ngx_command_t`: the name, the contexts where it is allowed, how many arguments it takes,
 * a parser for them, its default, and whether an inner block inherits it. The loader, `-t`, the
 * reload path and docs/directives.md all read these tables.
 */
import { ConfigError, type ConfigLocation } from '../core/errors.js';
import type { ConfNode, DirectiveNode } from './parser.js';

/**
 * The contexts of nginx's configuration, named as the nginx documentation names them, plus
 * `server_if`/`location_if` for the two kinds of `if` block and `stream_*` for the stream module.
 */
export type Context =
  | 'main'
  | 'events'
  | 'http'
  | 'server'
  | 'location'
  | 'server_if'
  | 'location_if'
  | 'limit_except'
  | 'upstream'
  | 'stream'
  | 'stream_server'
  | 'stream_upstream';

/** Every context, for directives that nginx allows anywhere (`NGX_ANY_CONF`). */
export const ALL_CONTEXTS: readonly Context[] = [
  'main', 'events', 'http', 'server', 'location', 'server_if', 'location_if', 'limit_except',
  'upstream', 'stream', 'stream_server', 'stream_upstream',
];

/**
 * How many arguments a directive takes, after its name: a list of allowed counts (nginx's
 * `NGX_CONF_TAKE12` is `[1, 2]`), `'flag'` for `on`/`off`, `'1+'`/`'2+'` for at least one or two,
 * `'any'` for any number.
 */
export type ArgCount = readonly number[] | 'flag' | '1+' | '2+' | 'any';

/**
 * The typed values of all directives, keyed by directive name. Each module adds its own keys by
 * declaration merging (`declare module '../conf/registry.js' { interface DirectiveValues { ... } }`),
 * so that `block.get('worker_processes')` is typed wherever it is read.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DirectiveValues {}

/** A directive name some module has registered. */
export type DirectiveName = keyof DirectiveValues & string;

/** What a directive's parser can see and do. */
export interface DirectiveContext {
  /** The directive as written. */
  readonly node: DirectiveNode;
  /** Where it is, for error messages. */
  readonly location: ConfigLocation;
  /** The context it appears in. */
  readonly context: Context;
  /**
   * The directive's position in document order across the whole configuration (includes
   * expanded), for modules whose directives of different names run in sequence (rewrite, set, if).
   */
  readonly order: number;
  /** The prefix (`-p`), which relative paths such as `pid` resolve against, with a trailing slash. */
  readonly prefix: string;
  /** The directory of the main configuration file, which `include` resolves against. */
  readonly confPrefix: string;
  /** The block the directive stands in; undefined in `main`. */
  readonly enclosing: { readonly name: string; readonly args: readonly string[]; readonly value: unknown } | undefined;
  /** Throws a configuration error at this directive: `fail('invalid value "x"')`. */
  fail(reason: string): never;
  /**
   * Records a warning at this directive (or at `at`, a line inside its block or an included file),
   * which `-t` prints at [warn] as nginx's `ngx_conf_log_error(NGX_LOG_WARN)` does.
   */
  warn(reason: string, at?: ConfigLocation): void;
  /**
   * The one warning for a directive hitless accepts but cannot apply (a kernel knob, a buffer Node
   * owns): `"name" has no effect in hitless (reason)`. Docs say what hitless does instead.
   */
  noEffect(reason: string): void;
  /**
   * Reads a file the directive takes in while the configuration is read (ssl_password_file): from
   * the disk in the master, from the master's copy in a worker, so it is opened once (a FIFO).
   * Throws the system error.
   */
  readData(path: string): Buffer;
}

/** A warning found while loading: the reason and where, as `-t` prints it. */
export interface ConfigWarning {
  readonly reason: string;
  /** Undefined for a warning of a module check that nginx logs without one ({@link CheckContext.warn}). */
  readonly location: ConfigLocation | undefined;
  /** `reason in file:line`, nginx's layout. */
  readonly message: string;
}

/** The wording of {@link DirectiveContext.noEffect}, shared by every module that warns so. */
export function noEffectReason(name: string, reason: string): string {
  return `"${name}" has no effect in hitless (${reason})`;
}

/** What a default can depend on. */
export interface DefaultContext {
  readonly prefix: string;
  readonly confPrefix: string;
}

/** What a module check gets: the defaults' context, and a [warn] nginx logs without a location (`ngx_log_error()` on `cf->log`). */
export interface CheckContext extends DefaultContext {
  warn(reason: string): void;
}

interface SpecBase<K extends DirectiveName> {
  readonly name: K;
  readonly contexts: readonly Context[];
  readonly args: ArgCount;
  /** nginx's documentation syntax line, without the directive name: `number | auto;`. */
  readonly syntax: string;
  /** One line of meaning, for docs/directives.md. */
  readonly summary: string;
}

/** A directive that ends with `;` and stores a value in its block. */
export interface ValueDirectiveSpec<K extends DirectiveName> extends SpecBase<K> {
  readonly kind: 'value';
  /**
   * Parses the arguments. `previous` is the value already set in this block, for repeatable
   * directives that accumulate (`listen`, `add_header`).
   */
  readonly parse: (args: readonly string[], ctx: DirectiveContext, previous: DirectiveValues[K] | undefined) => DirectiveValues[K];
  /** May appear more than once in one block. Default: false, and a second one is `is duplicate`. */
  readonly repeatable?: boolean;
  /** An inner block that does not set it takes the outer block's value. Default: true. */
  readonly inherit?: boolean;
  /** The value when neither this block nor an outer one sets it. */
  readonly default?: (ctx: DefaultContext) => DirectiveValues[K];
  /** The default as nginx's documentation writes it (`worker_processes 1;`), or `—`. */
  readonly defaultText?: string;
}

/** A directive that opens a block of directives of another context (`http`, `server`, `location`). */
export interface BlockDirectiveSpec<K extends DirectiveName> extends SpecBase<K> {
  readonly kind: 'block';
  /** The context of the directives inside the block. */
  readonly block: Context | ((args: readonly string[], ctx: DirectiveContext) => Context);
  /** May appear only once in its context (`http`, `events`). */
  readonly unique?: boolean;
  /**
   * Parses the block's own arguments into a value kept on the block (a location's match). Runs
   * before the block's contents are read, as nginx's block handlers do, so it can check the
   * enclosing block (`ctx.enclosing`) first.
   */
  readonly parse?: (args: readonly string[], ctx: DirectiveContext) => unknown;
}

/**
 * A directive whose block holds data rather than directives (`map`, `types`): the parser receives
 * the raw nodes and stores one value in the enclosing block.
 */
export interface RawBlockDirectiveSpec<K extends DirectiveName> extends SpecBase<K> {
  readonly kind: 'raw-block';
  readonly parse: (
    args: readonly string[],
    nodes: readonly ConfNode[],
    ctx: DirectiveContext,
    previous: DirectiveValues[K] | undefined,
  ) => DirectiveValues[K];
  readonly repeatable?: boolean;
  readonly inherit?: boolean;
  readonly default?: (ctx: DefaultContext) => DirectiveValues[K];
  readonly defaultText?: string;
}

/** A directive's entry in a module's table. */
export type DirectiveSpec<K extends DirectiveName = DirectiveName> =
  | ValueDirectiveSpec<K>
  | BlockDirectiveSpec<K>
  | RawBlockDirectiveSpec<K>;

/**
 * Any directive's spec, whatever its value type. Not the union of every name's spec: with more
 * than ~600 directives that union is past what tsc represents (TS2590); a registry stores specs
 * whose names and values it does not inspect, and defineDirective() checks each spec against its
 * own name's value type where it is written.
 */
export type AnyDirectiveSpec = DirectiveSpec<DirectiveName>;

/** The read-only view of a block that block checks and module checks receive. */
export interface ConfBlockView {
  readonly context: Context;
  readonly name: string;
  readonly args: readonly string[];
  readonly value: unknown;
  readonly file: string;
  readonly line: number;
  readonly parent: ConfBlockView | undefined;
  readonly blocks: readonly ConfBlockView[];
  get<K extends DirectiveName>(name: K): DirectiveValues[K];
  isSet(name: DirectiveName): boolean;
}

/** A module: a directive table, and checks that need the whole tree (nginx's `init_main_conf`). */
export interface ConfModule {
  /** nginx's name for the module (`ngx_http_core_module`), or hitless's own (`hitless_admin_module`). */
  readonly name: string;
  readonly directives: readonly AnyDirectiveSpec[];
  /** Checks run after the whole tree is built, in module order; throw a ConfigError to refuse. */
  readonly check?: (main: ConfBlockView, ctx: CheckContext) => void;
}

/** Typed identity helper for one directive's spec, so each table entry is checked against its value type. */
export function defineDirective<K extends DirectiveName>(spec: DirectiveSpec<K>): AnyDirectiveSpec {
  return spec as unknown as AnyDirectiveSpec;
}

/** Every registered directive, by name; a name may have one spec per set of contexts. */
export class DirectiveRegistry {
  readonly #byName = new Map<string, AnyDirectiveSpec[]>();
  readonly #modules: ConfModule[] = [];

  constructor(modules: readonly ConfModule[] = []) {
    for (const module of modules) this.register(module);
  }

  /** Adds a module's table. A name may repeat only for disjoint contexts (`server` in http and upstream). */
  register(module: ConfModule): this {
    for (const spec of module.directives) {
      const specs = this.#byName.get(spec.name) ?? [];
      const clash = specs.find((other) => other.contexts.some((c) => spec.contexts.includes(c)));
      if (clash) throw new Error(`directive "${spec.name}" is registered twice for one context`);
      specs.push(spec);
      this.#byName.set(spec.name, specs);
    }
    this.#modules.push(module);
    return this;
  }

  /** The specs registered under a name; empty when the directive is unknown. */
  lookup(name: string): readonly AnyDirectiveSpec[] {
    return this.#byName.get(name) ?? [];
  }

  /** The spec that applies to `name` in `context`, if any. */
  find(name: string, context: Context): AnyDirectiveSpec | undefined {
    return this.lookup(name).find((spec) => spec.contexts.includes(context));
  }

  /** Every spec allowed in a context, for merging values into a block. */
  inContext(context: Context): readonly AnyDirectiveSpec[] {
    return [...this.#byName.values()].flat().filter((spec) => spec.contexts.includes(context));
  }

  /** The registered modules, in registration order. */
  get modules(): readonly ConfModule[] {
    return this.#modules;
  }
}

/** Raises a configuration error at a location: the one way parsers report bad arguments. */
export function failAt(location: ConfigLocation, reason: string): never {
  throw new ConfigError(reason, location);
}
