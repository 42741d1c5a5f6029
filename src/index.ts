/** The hitless library: everything the command line does can be done from code. */
export { HitlessError, ConfigError, ConfigSyntaxError, ConfigIncludeError, UsageError, type ErrorCode, type ConfigLocation } from './core/errors.js';
export { parseNumber, parseSize, parseTime, LOG_LEVELS, type LogLevel } from './core/parse.js';
export { parseConfig, parseConfigText, diskSource, type ConfigSource, type ConfNode, type DirectiveNode, type ErrorNode, type ConfFile, type ParsedConfig } from './conf/parser.js';
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
export { loadConfig, loadConfigText, type LoadOptions } from './conf/loader.js';
export { builtinModules, createRegistry } from './modules.js';
export { runProbe, formatProbeReport, probeSucceeded, PROBE_DEFAULTS, type ProbeOptions, type ProbeReport, type ProbeFailure, type ProbeStopReason, type ProbeErrorKind, type LatencyPercentiles } from './probe/probe.js';
export { deploy, DeployError, DEPLOY_EXIT_CODES, NginxTarget, CommandTarget, HitlessTarget, preflight, verifyServedCertificate, type DeployPlan, type DeployOptions, type DeployReport, type DeployTarget } from './deploy/index.js';
export { runMaster, signalMaster, PidFileError, ListenError, reloadChannel, type MasterOptions, type MasterCommand } from './process/index.js';
export { startServer, RunningServer, type ServerOptions, type ServerAddress, type PutCertificateResult } from './process/server.js';
export { localServingState, type ServingState } from './http/serving-state.js';
export type { TlsRuntime } from './tls/tls-runtime.js';
export type { ListenSpec } from './http/runtime.js';
export { HttpRuntime } from './http/runtime.js';
export { StreamRuntime } from './stream/runtime.js';
export { HttpAndStreamRuntime, collectListens } from './process/http-and-stream-runtime.js';
export type { HttpExchange, ProtocolConnection } from './http/exchange.js';
export {
  channels as diagnosticsChannels,
  upstreamConnectChannel,
  type UpstreamProtocol,
  type AttemptOutcome,
  type AttemptTimings,
  type UpstreamConnectMessage,
  type UpstreamConnectErrorMessage,
  type UpstreamFinishMessage,
  type RequestFinishMessage,
  type ReloadMessage,
  type CertificatePutMessage,
  type HealthChangeMessage,
  type HealthProbeMessage,
  type TlsHandshakeMessage,
} from './core/diagnostics.js';
export { RequestMetrics } from './http/request-metrics.js';
export { renderExposition, formatOfAccept, EXPOSITION_CONTENT_TYPES, type ExpositionFormat } from './admin/exposition.js';
export { METRIC_FAMILIES, type MetricFamily } from './admin/metric-families.js';
export { ErrorLog } from './core/log.js';
export { VERSION } from './core/version.js';
export { AdminClient, AdminClientError, type AdminEndpoint } from './admin/admin-client.js';
export type { AdminStatus, CertificatePutResult } from './admin/admin-server.js';
export { CertificateStore, checkCertificate, CertificateRefusedError, CertificateNotFoundError, type StoredCertificate, type CertificateSummary } from './tls/certificate-store.js';
export { createSelfSigned, type SelfSignedPair, type SelfSignedOptions } from './tls/self-signed.js';
