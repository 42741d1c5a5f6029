/**
 * Every message the master and its workers exchange over the `child_process.fork()` IPC channel,
 * typed in one place, as nginx keeps its channel commands (`NGX_CMD_QUIT`, `NGX_CMD_TERMINATE`,
 * `NGX_CMD_REOPEN`, `NGX_CMD_OPEN_CHANNEL`) in src/os/unix/ngx_channel.h.
 *
 * A listening socket travels with a `listen` message as the handle argument of `child.send()`.
 * Node sends a message that carries a handle only after the previous handle was acknowledged
 * (lib/internal/child_process.js `_handleQueue`), so messages arrive in the order they were sent:
 * every `listen` before the `serve` that follows them.
 */
import type { StubStatusCounts } from '../core/connection-stats.js';
import { isMetricsSnapshot, type MetricsSnapshot } from '../admin/metric-counters.js';
import type { DownWindow } from '../upstream/peer-downtime.js';
import type { CompactPeerStates } from '../upstream/upstream-report.js';
import type { ExpositionFormat } from '../admin/exposition.js';
import type { MasterCommand } from './inherited-sockets.js';
import type { ErrorLogTarget } from '../core/log.js';
import type { StoredCertificate } from '../tls/certificate-store.js';
import type { AcmeChallengeTable } from '../tls/acme-challenges.js';
import type { LimitConnAnswer, LimitConnCheck, LimitReqAnswer, LimitReqCheck } from '../http/limits.js';
import type { HealthSnapshot } from '../upstream/health/health-table.js';
import type { PeerState } from '../upstream/group.js';
import type { ResolvedAnswer } from '../upstream/resolve.js';

/** nginx exits a worker with 2 when it cannot start (`NGX_ERROR` in init); the master does not respawn it. */
export const WORKER_FATAL_EXIT_CODE = 2;

/** The file texts and options a worker rebuilds the validated configuration from. */
export interface ConfigSnapshot {
  /** The main configuration file, absolute (`config.file`). */
  readonly file: string;
  /** The prefix, absolute, with its trailing slash (`config.prefix`). */
  readonly prefix: string;
  /** Directives given with `-g`, if any. */
  readonly params?: string;
  /** Every file the master read, with the text it validated (`config.files`). */
  readonly files: readonly { readonly path: string; readonly text: string }[];
  /** The files directives read (`config.dataFiles`: ssl_password_file), which a worker must not open again. */
  readonly dataFiles?: readonly { readonly path: string; readonly base64: string }[];
}

/** Master to worker: one listening socket, sent with its raw handle. */
export interface ListenMessage {
  readonly type: 'listen';
  readonly key: string;
}

/** Master to worker: the configuration to serve, once every `listen` message has been sent. */
export interface ServeMessage {
  readonly type: 'serve';
  readonly generation: number;
  readonly config: ConfigSnapshot;
  /** The error log the master resolved (the configured one, or the `-e` path). */
  readonly errorLog: readonly ErrorLogTarget[];
  /** The keys of every `listen` message sent before this one. */
  readonly listens: readonly string[];
  /** How long a draining worker lets an idle keep-alive connection send one more request. */
  readonly drainGraceMs: number;
  /** The master's TLS session ticket keys and the shared zones', base64 (tls/ticket-keys.ts), the same for every worker. */
  readonly ticketKeys: TicketKeysSnapshot;
  /** Every certificate of the master's store (tls/certificate-store.ts). */
  readonly certificates: readonly StoredCertificate[];
  /** How to start the master again if it dies (worker.ts): its own command line and directory. */
  readonly master: MasterCommand;
  /** The last answers of the `server ... resolve` lines (upstream/resolve.ts), so a reload starts from them. */
  readonly resolved?: readonly (readonly [string, ResolvedAnswer])[];
  /**
   * The ACME challenges presented now (the last {@link AcmeChallengesMessage}'s table), so that a
   * new worker answers them from its first request; absent: none.
   */
  readonly acmeChallenges?: AcmeChallengeTable;
}

/**
 * Master to worker: the ACME challenges every worker answers (tls/acme-challenges.ts), the whole
 * table each time: http-01 tokens (`/.well-known/acme-challenge/TOKEN` on every http server) and
 * tls-alpn-01 certificates (a ClientHello with ALPN `acme-tls/1` for the name). A worker started
 * later gets the table in its {@link ServeMessage}.
 */
export interface AcmeChallengesMessage extends AcmeChallengeTable {
  readonly type: 'acme-challenges';
  /** When set, the worker answers {@link AcmeChallengesAckMessage} with it once the table is in use. */
  readonly seq?: number;
}

/**
 * Worker to master: the {@link AcmeChallengesMessage} with this `seq` is answered from now on, so
 * the master tells the CA to validate only once every worker can answer.
 */
export interface AcmeChallengesAckMessage {
  readonly type: 'acme-challenges-ack';
  readonly seq: number;
}

/**
 * Master to worker: a certificate of the store was put or deleted. The worker answers with a
 * {@link CertificateAckMessage} of the same `seq` once its next handshake uses the change.
 */
export type CertificateMessage =
  | { readonly type: 'cert-put'; readonly seq: number; readonly certificate: StoredCertificate }
  | { readonly type: 'cert-delete'; readonly seq: number; readonly name: string };

/** Worker to master: the {@link CertificateMessage} with this `seq` is in use. */
export interface CertificateAckMessage {
  readonly type: 'cert-ack';
  readonly seq: number;
}

/**
 * The session ticket keys as the master holds them, each list the one that encrypts first, base64:
 * its own, and each `ssl_session_cache shared:` zone's (process/session-caches.ts).
 */
export interface TicketKeysSnapshot {
  readonly master: readonly string[];
  readonly zones: readonly { readonly zone: string; readonly size: number; readonly keys: readonly string[] }[];
}

/** Master to worker: the master's session ticket keys, or a shared zone's, were rotated; base64, as in {@link ServeMessage}. */
export interface TicketKeyMessage {
  readonly type: 'ticket-key';
  /** The `shared:` zone whose keys these are; absent: the master's own. */
  readonly zone?: { readonly name: string; readonly size: number };
  readonly keys: readonly string[];
}

/** Master to worker: stop accepting, finish what is in flight, exit 0 (nginx's `NGX_CMD_QUIT`). */
export interface DrainMessage {
  readonly type: 'drain';
}

/** Master to worker: close every connection and exit now (nginx's `NGX_CMD_TERMINATE`). */
export interface TerminateMessage {
  readonly type: 'terminate';
}

/** Master to worker: reopen log files (nginx's `NGX_CMD_REOPEN`). */
export interface ReopenMessage {
  readonly type: 'reopen';
}

/**
 * Master to worker: the active health checks' whole table, sent after every change and to every
 * new worker, so that all of them keep an unhealthy peer out at once (upstream/health/active.ts).
 */
export interface UpstreamHealthMessage {
  readonly type: 'upstream-health';
  readonly snapshot: HealthSnapshot;
}

/**
 * Master to worker: a question for every upstream peer's state as the worker sees it (the admin
 * API's `GET /v1/upstreams`), answered with an {@link UpstreamStatesAnswerMessage} of the same
 * `id`; the master waits a bounded time for it.
 */
export interface UpstreamStatesMessage {
  readonly type: 'upstream-states';
  readonly id: number;
}

/**
 * Master to worker: a question for the worker's stub_status counters, answered with a
 * {@link StubStatusReportMessage} of the same `id`; the master waits a bounded time for it.
 */
export interface StubStatusQueryMessage {
  readonly type: 'stub-status';
  readonly id: number;
}

/**
 * Master to worker: a scrape's question for the worker's metrics, answered with a
 * {@link MetricsReportMessage} of the same `id`; the master waits a bounded time for it.
 */
export interface MetricsQueryMessage {
  readonly type: 'metrics';
  readonly id: number;
}

/** Every message a master sends to a worker. */
export type MasterToWorker = ListenMessage | ServeMessage | DrainMessage | TerminateMessage | ReopenMessage | TicketKeyMessage | CertificateMessage | UpstreamHealthMessage | UpstreamStatesMessage | StubStatusQueryMessage | MetricsQueryMessage | AcmeChallengesMessage;

/** Worker to master: the configuration is built and every listening socket is accepting. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly generation: number;
}

/** Worker to master: the answer to the {@link UpstreamStatesMessage} with this `id`. */
export interface UpstreamStatesAnswerMessage {
  readonly type: 'upstream-states-answer';
  readonly id: number;
  readonly states: readonly PeerState[];
}

/** Worker to master: the answer to the {@link StubStatusQueryMessage} with this `id`. */
export interface StubStatusReportMessage {
  readonly type: 'stub-status-report';
  readonly id: number;
  readonly counts: StubStatusCounts;
}

/**
 * Worker to master: everything the worker has counted since it started (counters only grow), its
 * connection counters and its process gauges. Sent as the answer to a {@link MetricsQueryMessage}
 * (`id` and `upstreams` set), every METRICS_PUSH_MS while anything changed and as the worker exits
 * (`id` 0), so that a worker killed by SIGKILL loses at most its last interval's counts.
 */
export interface MetricsReportMessage {
  readonly type: 'metrics-report';
  readonly id: number;
  readonly snapshot: MetricsSnapshot;
  readonly counts: StubStatusCounts;
  readonly rssBytes: number;
  /** The event loop delay's 99th percentile and maximum over the last window, seconds. */
  readonly loopLagSeconds: number;
  readonly loopLagMaxSeconds: number;
  /** Every upstream peer's state as this worker sees it, in compact form; only in an answer. */
  readonly upstreams?: CompactPeerStates;
  /** When the worker made the report (Unix ms). */
  readonly at?: number;
  /** Its max_fails windows: every peer out now, or out since its previous report (upstream/peer-downtime.ts). */
  readonly downWindows?: readonly DownWindow[];
}

/** Every message a worker sends to its master. */
export type WorkerToMaster = ReadyMessage | CertificateAckMessage | AcmeChallengesAckMessage | UpstreamStatesAnswerMessage | StubStatusReportMessage | MetricsReportMessage;

/** Worker to master: a `hitless_metrics` request wants the exposition text; answered with a {@link MetricsAnswerMessage} of the same `id`. */
export interface MetricsRequestMessage {
  readonly type: 'metrics-request';
  readonly id: number;
  readonly format: ExpositionFormat;
}

/** Master to worker: the text for the {@link MetricsRequestMessage} with this `id`. */
export interface MetricsAnswerMessage {
  readonly type: 'metrics-answer';
  readonly id: number;
  readonly text: string;
}

/** True when an IPC message is a worker's `hitless_metrics` request. */
export function isMetricsRequest(message: unknown): message is MetricsRequestMessage {
  if (!hasType(message) || message.type !== 'metrics-request') return false;
  const { id, format } = message as { id?: unknown; format?: unknown };
  return typeof id === 'number' && (format === 'prometheus' || format === 'openmetrics');
}

/** True when an IPC message is the master's metrics text. */
export function isMetricsAnswer(message: unknown): message is MetricsAnswerMessage {
  return hasType(message) && message.type === 'metrics-answer' && typeof (message as { id?: unknown }).id === 'number' && typeof (message as { text?: unknown }).text === 'string';
}

/**
 * Worker to master: a `stub_status` request wants every worker's counters summed; answered with a
 * {@link StubStatusAnswerMessage} of the same `id`.
 */
export interface StubStatusRequestMessage {
  readonly type: 'stub-status-request';
  readonly id: number;
}

/** Master to worker: the sum for the {@link StubStatusRequestMessage} with this `id`. */
export interface StubStatusAnswerMessage {
  readonly type: 'stub-status-answer';
  readonly id: number;
  readonly counts: StubStatusCounts;
}

/** True when an IPC message is a worker's stub_status request. */
export function isStubStatusRequest(message: unknown): message is StubStatusRequestMessage {
  return hasType(message) && message.type === 'stub-status-request' && typeof (message as { id?: unknown }).id === 'number';
}

/** True when an IPC message is the master's stub_status sum. */
export function isStubStatusAnswer(message: unknown): message is StubStatusAnswerMessage {
  return hasType(message) && message.type === 'stub-status-answer' && typeof (message as { id?: unknown }).id === 'number' && isCounts((message as { counts?: unknown }).counts);
}

function isCounts(value: unknown): value is StubStatusCounts {
  if (typeof value !== 'object' || value === null) return false;
  const counts = value as Record<string, unknown>;
  return ['accepted', 'handled', 'active', 'requests', 'reading', 'writing', 'waiting'].every((key) => typeof counts[key] === 'number');
}

/**
 * Worker to master: a question to the shared zones (`limit_req`, `limit_conn`), answered with the
 * same `id`; a `release` gives back limit_conn counts and is not answered.
 */
export type ZoneRequestMessage =
  | { readonly type: 'zone'; readonly id: number; readonly op: 'req'; readonly checks: readonly LimitReqCheck[] }
  | { readonly type: 'zone'; readonly id: number; readonly op: 'conn' | 'release'; readonly checks: readonly LimitConnCheck[] };

/** Master to worker: the zones' answer to the {@link ZoneRequestMessage} with this `id`. */
export interface ZoneAnswerMessage {
  readonly type: 'zone-answer';
  readonly id: number;
  readonly answer: LimitReqAnswer | LimitConnAnswer;
}

/** True when an IPC message is a worker's question to the shared zones. */
export function isZoneRequest(message: unknown): message is ZoneRequestMessage {
  return hasType(message) && message.type === 'zone' && Array.isArray((message as { checks?: unknown }).checks);
}

/** True when an IPC message is the master's answer from the shared zones. */
export function isZoneAnswer(message: unknown): message is ZoneAnswerMessage {
  return hasType(message) && message.type === 'zone-answer' && typeof (message as { id?: unknown }).id === 'number';
}

/**
 * Worker to master: a TLS session for the `ssl_session_cache shared:name:size` zone (`put`, not
 * answered), the first ticket this worker encrypted under the zone's keys (`ticket-use`, not
 * answered: the zone's rotation starts), or a question for one (`get`), answered with a {@link SessionAnswerMessage} of the
 * same `id`. `id` numbers questions; `session` is the session ID in hex; `data` is base64.
 */
export type SessionRequestMessage =
  | { readonly type: 'ssl-session'; readonly op: 'put'; readonly zone: string; readonly size: number; readonly session: string; readonly data: string; readonly timeoutMs: number }
  | { readonly type: 'ssl-session'; readonly op: 'get'; readonly id: number; readonly zone: string; readonly size: number; readonly session: string }
  | { readonly type: 'ssl-session'; readonly op: 'ticket-use'; readonly zone: string; readonly size: number; readonly timeoutMs: number };

/** Master to worker: the session asked for by the {@link SessionRequestMessage} with this `id`, base64, or null. */
export interface SessionAnswerMessage {
  readonly type: 'ssl-session-answer';
  readonly id: number;
  readonly data: string | null;
}

/** True when an IPC message is a worker's put or question to a shared session cache. */
export function isSessionRequest(message: unknown): message is SessionRequestMessage {
  if (!hasType(message) || message.type !== 'ssl-session') return false;
  const { op, zone, size, session, timeoutMs } = message as { op?: unknown; zone?: unknown; size?: unknown; session?: unknown; timeoutMs?: unknown };
  if (typeof zone !== 'string' || typeof size !== 'number') return false;
  if (op === 'ticket-use') return typeof timeoutMs === 'number';
  return (op === 'put' || op === 'get') && typeof session === 'string';
}

/** True when an IPC message is the master's answer from a shared session cache. */
export function isSessionAnswer(message: unknown): message is SessionAnswerMessage {
  return hasType(message) && message.type === 'ssl-session-answer' && typeof (message as { id?: unknown }).id === 'number';
}

/** Daemon child to the foreground process that started it: the master is up, workers are ready. */
export interface MasterUpMessage {
  readonly type: 'master-up';
  readonly pid: number;
}

const MASTER_TO_WORKER_TYPES: ReadonlySet<string> = new Set(['listen', 'serve', 'drain', 'terminate', 'reopen', 'ticket-key', 'cert-put', 'cert-delete', 'upstream-health', 'upstream-states', 'stub-status', 'metrics', 'acme-challenges']);

/** True when an IPC message is one a master sends to a worker. */
export function isMasterToWorker(message: unknown): message is MasterToWorker {
  return hasType(message) && MASTER_TO_WORKER_TYPES.has(message.type);
}

/** True when an IPC message is one a worker sends to its master. */
export function isWorkerToMaster(message: unknown): message is WorkerToMaster {
  if (!hasType(message)) return false;
  if (message.type === 'ready') return typeof (message as { generation?: unknown }).generation === 'number';
  if (message.type === 'upstream-states-answer') return typeof (message as { id?: unknown }).id === 'number' && Array.isArray((message as { states?: unknown }).states);
  if (message.type === 'stub-status-report') return typeof (message as { id?: unknown }).id === 'number' && isCounts((message as { counts?: unknown }).counts);
  if (message.type === 'metrics-report') {
    const { id, counts, snapshot } = message as { id?: unknown; counts?: unknown; snapshot?: unknown };
    return typeof id === 'number' && isCounts(counts) && isMetricsSnapshot(snapshot);
  }
  return (message.type === 'cert-ack' || message.type === 'acme-challenges-ack') && typeof (message as { seq?: unknown }).seq === 'number';
}

/** True when an IPC message says a daemonized master is up. */
export function isMasterUp(message: unknown): message is MasterUpMessage {
  return hasType(message) && message.type === 'master-up';
}

function hasType(message: unknown): message is { type: string } {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string';
}
