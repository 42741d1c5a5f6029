/** The hitless library: everything the command line does can be done from code. */
export { HitlessError, ConfigError, ConfigSyntaxError, ConfigIncludeError, UsageError, type ErrorCode, type ConfigLocation } from './core/errors.js';
export { parseNumber, parseSize, parseTime, LOG_LEVELS, type LogLevel } from './core/parse.js';
export { Lexer, type Word, type Statement } from './conf/lexer.js';
export { parseConfig, parseConfigText, firstError, diskSource, snapshotSource, type ConfigSource, type ConfNode, type DirectiveNode, type ErrorNode, type ConfFile, type ParsedConfig } from './conf/parser.js';
export {
  DirectiveRegistry,
  defineDirective,
  ALL_CONTEXTS,
  type Context,
  type ArgCount,
  type ConfModule,
  type DirectiveSpec,
  type DirectiveValues,
  type DirectiveContext,
} from './conf/registry.js';
export { ConfBlock, type HitlessConfig } from './conf/model.js';
export { loadConfig, loadConfigText, buildConfig, type LoadOptions } from './conf/loader.js';
export { builtinModules, createRegistry } from './conf/modules.js';
export { runProbe, formatProbeReport, probeSucceeded, PROBE_DEFAULTS, type ProbeOptions, type ProbeReport, type ProbeFailure, type ProbeStopReason, type ProbeErrorKind, type LatencyPercentiles } from './probe/probe.js';
export * as deploy from './deploy/index.js';
