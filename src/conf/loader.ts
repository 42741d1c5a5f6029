/**
 * The loader: walks the parsed tree against the directive registry, in document order, and builds
 * the frozen {@link HitlessConfig}. Checks run in the order nginx's `ngx_conf_handler()` runs them,
 * so the first error reported is the one nginx would report, in nginx's words.
 */
import { resolve } from 'node:path';
import { ConfigError, formatLocation, type ConfigLocation } from '../core/errors.js';
import { ConfBlock, deepFreeze, type HitlessConfig } from './model.js';
import { diskSource, parseConfig, parseConfigText, type ConfigDataFile, type ConfigSource, type ConfNode, type DirectiveNode, type ParsedConfig } from './parser.js';
import {
  noEffectReason,
  type AnyDirectiveSpec,
  type ArgCount,
  type ConfigWarning,
  type Context,
  type DefaultContext,
  type DirectiveContext,
  type DirectiveRegistry,
} from './registry.js';

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** The main configuration file; relative paths resolve against `prefix`. */
  readonly file: string;
  /** The prefix (`-p`). Default: the current directory. */
  readonly prefix?: string;
  /** Directives given with `-g`. */
  readonly params?: string;
  /** Where files are read from. Default: the disk. */
  readonly source?: ConfigSource;
  /** The registry to validate against (`createRegistry()` for every built-in module). */
  readonly registry: DirectiveRegistry;
}

/** Reads, parses and validates a configuration; throws the first {@link ConfigError} nginx would report. */
export function loadConfig(options: LoadOptions): HitlessConfig {
  const prefix = withSlash(resolve(options.prefix ?? '.'));
  const file = resolve(prefix, options.file);
  const parsed = parseConfig(file, {
    ...(options.params === undefined ? {} : { params: options.params }),
    ...(options.source === undefined ? {} : { source: options.source }),
  });
  return buildConfig(parsed, prefix, options.registry, options.source);
}

/** Validates configuration text with no file behind it (tests, tools). */
export function loadConfigText(text: string, registry: DirectiveRegistry, options: { file?: string; prefix?: string } = {}): HitlessConfig {
  const prefix = withSlash(resolve(options.prefix ?? '.'));
  const parsed = parseConfigText(text, options.file ?? 'memory', { confPrefix: prefix });
  return buildConfig(parsed, prefix, registry);
}

/** Builds the frozen model from a parsed tree. */
export function buildConfig(parsed: ParsedConfig, prefix: string, registry: DirectiveRegistry, source: ConfigSource = diskSource): HitlessConfig {
  const defaults: DefaultContext = { prefix, confPrefix: withSlash(parsed.confPrefix) };
  const warnings: ConfigWarning[] = [];
  const dataFiles: ConfigDataFile[] = [];
  const shared: SharedState = {
    next: 0,
    readData(path) {
      const data = source.readData(path);
      if (!dataFiles.some((file) => file.path === path)) dataFiles.push(Object.freeze({ path, base64: data.toString('base64') }));
      return data;
    },
  };
  const builder = new BlockBuilder(registry, defaults, warnings, 'main', undefined, undefined, undefined, shared);
  builder.walk(parsed.nodes);
  const main = builder.finish(undefined);
  const check = { ...defaults, warn: (reason: string): void => void warnings.push({ reason, location: undefined, message: reason }) };
  for (const module of registry.modules) module.check?.(main, check);
  return Object.freeze({
    file: parsed.path,
    prefix,
    confPrefix: defaults.confPrefix,
    files: deepFreeze([...parsed.files]),
    dataFiles: Object.freeze(dataFiles),
    main,
    warnings: deepFreeze(warnings),
  });
}

function withSlash(path: string): string {
  return path.endsWith('/') ? path : `${path}/`;
}

/**
 * Directives nginx removed that old configurations still carry: nginx's own answer is "unknown
 * directive", and hitless says what replaced them.
 */
const REMOVED_DIRECTIVES: Readonly<Record<string, string>> = {
  ssl: 'the "ssl" directive was removed in nginx 1.25.1: use the "ssl" parameter of "listen" instead (listen 443 ssl;)',
  spdy_headers_comp: 'SPDY was removed in nginx 1.9.5: use "http2 on;" (and the http2_* directives) instead',
};

/** What every block of one configuration shares while it is built. */
interface SharedState {
  /** The count of directives read so far in the whole configuration. */
  next: number;
  /** Reads a file for a directive through the configuration's source, and keeps its bytes for the workers. */
  readData(path: string): Buffer;
}

class BlockBuilder {
  readonly #registry: DirectiveRegistry;
  readonly #defaults: DefaultContext;
  readonly #warnings: ConfigWarning[];
  /** The directive count and the data files, shared by every block. */
  readonly #order: SharedState;
  readonly context: Context;
  readonly node: DirectiveNode | undefined;
  readonly parent: BlockBuilder | undefined;
  readonly value: unknown;
  readonly own: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  readonly ownNames = new Set<string>();
  readonly children: { builder: BlockBuilder; spec: AnyDirectiveSpec }[] = [];
  /** The merged values, once {@link finish} has run; children read their parent's. */
  merged: Record<string, unknown> | undefined;

  constructor(
    registry: DirectiveRegistry,
    defaults: DefaultContext,
    warnings: ConfigWarning[],
    context: Context,
    node: DirectiveNode | undefined,
    parent: BlockBuilder | undefined,
    value: unknown,
    order: SharedState,
  ) {
    this.#registry = registry;
    this.#order = order;
    this.#defaults = defaults;
    this.#warnings = warnings;
    this.context = context;
    this.node = node;
    this.parent = parent;
    this.value = value;
  }

  walk(nodes: readonly ConfNode[]): void {
    for (const node of nodes) {
      if (node.kind === 'error') throw node.error;
      this.#handle(node);
    }
  }

  #handle(node: DirectiveNode): void {
    const specs = this.#registry.lookup(node.name);
    if (specs.length === 0) throw new ConfigError(`unknown directive "${node.name}"`, node, { hint: REMOVED_DIRECTIVES[node.name] });
    const spec = specs.find((candidate) => candidate.contexts.includes(this.context));
    if (spec === undefined) throw new ConfigError(`"${node.name}" directive is not allowed here`, node);

    const ctx = this.#directiveContext(node);
    const opensBlock = spec.kind !== 'value';
    if (!opensBlock && node.block !== undefined) ctx.fail(`directive "${node.name}" is not terminated by ";"`);
    if (opensBlock && node.block === undefined) ctx.fail(`directive "${node.name}" has no opening "{"`);
    if (!argCountFits(spec.args, node.args.length)) ctx.fail(`invalid number of arguments in "${node.name}" directive`);
    if (spec.args === 'flag' && node.args[0] !== 'on' && node.args[0] !== 'off') {
      ctx.fail(`invalid value "${node.args[0] ?? ''}" in "${node.name}" directive, it must be "on" or "off"`);
    }

    if (node.name === 'include') {
      for (const file of node.included ?? []) this.walk(file.nodes);
      return;
    }

    switch (spec.kind) {
      case 'value': {
        const previous = this.own[spec.name];
        if (this.ownNames.has(spec.name) && !spec.repeatable) ctx.fail(`"${node.name}" directive is duplicate`);
        this.own[spec.name] = spec.parse(node.args, ctx, previous as never);
        this.ownNames.add(spec.name);
        return;
      }
      case 'raw-block': {
        const previous = this.own[spec.name];
        if (this.ownNames.has(spec.name) && !spec.repeatable) ctx.fail(`"${node.name}" directive is duplicate`);
        this.own[spec.name] = spec.parse(node.args, node.block ?? [], ctx, previous as never);
        this.ownNames.add(spec.name);
        return;
      }
      case 'block': {
        if (spec.unique && this.children.some((child) => child.spec === spec)) ctx.fail(`"${node.name}" directive is duplicate`);
        const inner = typeof spec.block === 'function' ? spec.block(node.args, ctx) : spec.block;
        const value = spec.parse?.(node.args, ctx);
        const child = new BlockBuilder(this.#registry, this.#defaults, this.#warnings, inner, node, this, value, this.#order);
        this.children.push({ builder: child, spec });
        child.walk(node.block ?? []);
        return;
      }
    }
  }

  #directiveContext(node: DirectiveNode): DirectiveContext {
    const location = { file: node.file, line: node.line };
    const enclosing = this.node === undefined ? undefined : { name: this.node.name, args: this.node.args, value: this.value };
    const warnings = this.#warnings;
    const warn = (reason: string, at: ConfigLocation = location): void => {
      warnings.push({ reason, location: at, message: `${reason} ${formatLocation(at)}` });
    };
    return {
      node,
      location,
      context: this.context,
      order: this.#order.next++,
      enclosing,
      prefix: this.#defaults.prefix,
      confPrefix: this.#defaults.confPrefix,
      fail(reason: string): never {
        throw new ConfigError(reason, location);
      },
      warn,
      noEffect: (reason: string) => warn(noEffectReason(node.name, reason)),
      readData: (path: string) => this.#order.readData(path),
    };
  }

  /** Merges values (own, else inherited, else default), then builds and seals the children. */
  finish(parent: ConfBlock | undefined): ConfBlock {
    const merged = Object.create(null) as Record<string, unknown>;
    for (const spec of this.#registry.inContext(this.context)) {
      if (spec.kind === 'block') continue;
      if (this.ownNames.has(spec.name)) {
        merged[spec.name] = this.own[spec.name];
        continue;
      }
      const outer = this.parent;
      if ((spec.inherit ?? true) && outer?.merged !== undefined && spec.contexts.includes(outer.context) && spec.name in outer.merged) {
        merged[spec.name] = outer.merged[spec.name];
        continue;
      }
      if (spec.default !== undefined) merged[spec.name] = spec.default(this.#defaults);
    }
    this.merged = merged;
    const blocks: ConfBlock[] = [];
    const block = new ConfBlock({
      context: this.context,
      name: this.node?.name ?? 'main',
      args: this.node?.args ?? [],
      value: this.value,
      file: this.node?.file ?? '',
      line: this.node?.line ?? 0,
      parent,
      blocks,
      values: merged,
      own: this.ownNames,
    });
    for (const child of this.children) blocks.push(child.builder.finish(block));
    return block.seal();
  }
}

function argCountFits(args: ArgCount, count: number): boolean {
  if (args === 'any') return true;
  if (args === 'flag') return count === 1;
  if (args === '1+') return count >= 1;
  if (args === '2+') return count >= 2;
  return args.includes(count);
}
