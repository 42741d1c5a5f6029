/**
 * The master's side of one worker process: forks it, hands it the listening sockets and the
 * configuration snapshot, tracks its state and reports how it exited.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { isMetricsRequest, isWorkerToMaster, isSessionRequest, isStubStatusRequest, isZoneRequest, type CertificateMessage, type MasterToWorker, type MetricsAnswerMessage, type MetricsReportMessage, type ServeMessage, type SessionAnswerMessage, type StubStatusAnswerMessage, type TicketKeyMessage, type ZoneAnswerMessage } from './ipc.js';
import type { ExpositionFormat } from '../admin/exposition.js';
import type { ListeningSockets } from './listening-sockets.js';
import type { MasterZones } from './zones.js';
import type { HealthSnapshot } from '../upstream/health/health-table.js';
import type { AcmeChallengeTable } from '../tls/acme-challenges.js';
import type { PeerState } from '../upstream/group.js';
import { isPeerConns, isPeerOutcome, type PeerConnsMessage, type PeerFailuresMessage, type PeerOtherConnsMessage, type PeerOutcomeMessage } from '../upstream/shared-peers.js';
import { isStickyLearn, type StickyLearnMessage, type StickySessionsMessage } from '../upstream/sticky-sessions.js';
import { isResolvedAnswer, type ResolvedAnswerMessage } from '../upstream/resolve.js';
import { REGEXP_GUARD_V8_FLAGS } from '../core/pcre.js';
import type { StubStatusCounts } from '../core/connection-stats.js';

/** The module forked for each worker unless the master is told otherwise. */
export const DEFAULT_WORKER_MODULE = fileURLToPath(new URL('./worker-main.js', import.meta.url));

/** How a worker process ended: an exit code, or the signal that killed it. */
export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A worker's answer about its upstream peers, or why there is none. */
export type UpstreamStatesResult = { readonly answered: true; readonly states: readonly PeerState[] } | { readonly answered: false; readonly error: string };

/** How a worker process is started: `env` and `working_directory` (process/worker-settings.ts). */
export interface WorkerSpawnOptions {
  /** Its whole environment. Default: the master's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Its current directory. Default: the master's. */
  readonly cwd?: string;
  /** Takes the worker's answers for `server ... resolve` lines. Default: none kept. */
  readonly onResolved?: (message: ResolvedAnswerMessage) => void;
  /** Sums every worker's stub_status counters for the worker's `stub_status` request. Default: its own are not summed (no answer). */
  readonly onStubStatus?: () => Promise<StubStatusCounts>;
  /** Writes the metrics exposition for the worker's `hitless_metrics` request. Default: no answer. */
  readonly onMetrics?: (format: ExpositionFormat) => Promise<string>;
  /** Sees every metrics report the worker sends (a push or an answer), as it arrives. Default: none. */
  readonly onMetricsReport?: (worker: WorkerProcess, report: MetricsReportMessage) => void;
}

/**
 * How long the master waits, after a worker exited, for the messages still in its channel (its
 * last metrics report): Node emits 'exit' on SIGCHLD, before the channel's last messages are read.
 */
const CHANNEL_DRAIN_MS = 1_000;

/** Where a worker is in its life. */
export type WorkerState = 'starting' | 'ready' | 'draining' | 'terminating' | 'exited';

/** One worker process, seen from the master. */
export class WorkerProcess {
  readonly pid: number;
  /** The configuration generation this worker serves. */
  readonly generation: number;
  /** The keys of the listening sockets it was handed. */
  readonly listens: readonly string[];
  /** Settles once the worker is ready; rejects if it exits first. */
  readonly ready: Promise<void>;
  /** Settles once the process has exited. */
  readonly exited: Promise<WorkerExit>;
  readonly #child: ChildProcess;
  /** Certificate changes sent and not yet acknowledged, by `seq`. */
  readonly #certificateAcks = new Map<number, () => void>();
  /** ACME challenge tables sent and not yet acknowledged, by `seq`. */
  readonly #acmeAcks = new Map<number, () => void>();
  #acmeSeq = 0;
  /** Upstream state questions sent and not yet answered, by `id`. */
  readonly #stateQuestions = new Map<number, (answer: UpstreamStatesResult) => void>();
  /** stub_status questions sent and not yet answered, by `id`. */
  readonly #statusQuestions = new Map<number, (counts: StubStatusCounts | undefined) => void>();
  /** The worker's last stub_status counters: what it had counted when it exited or stopped answering. */
  #lastCounts: StubStatusCounts | undefined;
  /** Metrics questions sent and not yet answered, by `id`. */
  readonly #metricsQuestions = new Map<number, (report: MetricsReportMessage | undefined) => void>();
  /** The worker's last metrics report (an answer or a push). */
  #lastMetrics: MetricsReportMessage | undefined;
  /** When it arrived (Unix ms). */
  #lastMetricsAt: number | undefined;
  #nextQuestion = 1;
  #state: WorkerState = 'starting';
  #stopRequested = false;
  #wasReady = false;

  /** Forks a worker and sends it its sockets and configuration. */
  /**
   * `zones` answers limit_req/limit_conn questions; `onPeerOutcome` takes reports about peers of
   * groups with `zone` (upstream/shared-peers.ts).
   */
  constructor(
    module: string,
    serve: ServeMessage,
    sockets: ListeningSockets,
    zones?: MasterZones,
    onPeerOutcome?: (message: PeerOutcomeMessage) => void,
    spawn: WorkerSpawnOptions = {},
  ) {
    this.#child = fork(module, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // A configured regex that backtracks too much is finished by V8's linear-time engine (core/pcre.ts).
      execArgv: [...process.execArgv, ...REGEXP_GUARD_V8_FLAGS],
      ...(spawn.env === undefined ? {} : { env: spawn.env }),
      ...(spawn.cwd === undefined ? {} : { cwd: spawn.cwd }),
    });
    if (this.#child.pid === undefined) throw new Error(`fork() of ${module} failed`);
    this.pid = this.#child.pid;
    this.generation = serve.generation;
    this.listens = serve.listens;
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#state = 'exited';
        for (const settle of [...this.#stateQuestions.values()]) settle({ answered: false, error: 'exited before it answered' });
        for (const settle of [...this.#statusQuestions.values()]) settle(undefined);
        for (const settle of [...this.#metricsQuestions.values()]) settle(undefined);
        // Its last reports may still be in the channel: exited once the channel is read to its end.
        const done = (): void => resolve({ code, signal });
        if (!this.#child.connected) return done();
        const timer = setTimeout(done, CHANNEL_DRAIN_MS);
        this.#child.once('disconnect', () => {
          clearTimeout(timer);
          done();
        });
      });
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.#child.on('message', (message: unknown) => {
        if (!isWorkerToMaster(message)) return;
        if (message.type === 'cert-ack') {
          this.#certificateAcks.get(message.seq)?.();
          this.#certificateAcks.delete(message.seq);
          return;
        }
        if (message.type === 'acme-challenges-ack') {
          this.#acmeAcks.get(message.seq)?.();
          this.#acmeAcks.delete(message.seq);
          return;
        }
        if (message.type === 'upstream-states-answer') {
          this.#stateQuestions.get(message.id)?.({ answered: true, states: message.states });
          return;
        }
        if (message.type === 'metrics-report') {
          this.#lastMetrics = message;
          this.#lastMetricsAt = Date.now();
          this.#lastCounts = message.counts;
          spawn.onMetricsReport?.(this, message);
          if (message.id !== 0) this.#metricsQuestions.get(message.id)?.(message);
          return;
        }
        if (message.type === 'stub-status-report') {
          this.#lastCounts = message.counts;
          this.#statusQuestions.get(message.id)?.(message.counts);
          return;
        }
        if (message.generation !== this.generation) return;
        if (this.#state === 'starting') this.#state = 'ready';
        this.#wasReady = true;
        resolve();
      });
      void this.exited.then((exit) => reject(new Error(`worker process ${this.pid} exited before it was ready (${exit.signal ?? exit.code})`)));
    });
    // The shared zones (limit_req, limit_conn, ssl_session_cache shared:) answer the worker's questions on the same channel.
    if (zones !== undefined) {
      this.#child.on('message', (message: unknown) => {
        if (isSessionRequest(message)) {
          const answer = zones.sessions.answer(message);
          if (answer !== undefined) this.#send(answer);
          return;
        }
        if (!isZoneRequest(message)) return;
        const answer = zones.answer(message);
        if (answer !== undefined) this.#send(answer);
      });
    }
    if (onPeerOutcome !== undefined) {
      this.#child.on('message', (message: unknown) => {
        if (isPeerOutcome(message)) onPeerOutcome(message);
      });
    }
    if (spawn.onStubStatus !== undefined) {
      const onStubStatus = spawn.onStubStatus;
      this.#child.on('message', (message: unknown) => {
        if (!isStubStatusRequest(message)) return;
        void onStubStatus().then((counts) => {
          if (this.#state !== 'exited') this.#send({ type: 'stub-status-answer', id: message.id, counts });
        });
      });
    }
    if (spawn.onMetrics !== undefined) {
      const onMetrics = spawn.onMetrics;
      this.#child.on('message', (message: unknown) => {
        if (!isMetricsRequest(message)) return;
        void onMetrics(message.format).then((text) => {
          if (this.#state !== 'exited') this.#send({ type: 'metrics-answer', id: message.id, text });
        });
      });
    }
    if (spawn.onResolved !== undefined) {
      const onResolved = spawn.onResolved;
      this.#child.on('message', (message: unknown) => {
        if (isResolvedAnswer(message)) onResolved(message);
      });
    }
    // A reload that is abandoned does not wait for `ready`; nobody must see an unhandled rejection.
    this.ready.catch(() => undefined);
    // Sending to a process that has just died fails with EPIPE; its 'exit' tells the rest.
    this.#child.on('error', () => undefined);
    for (const key of serve.listens) {
      // Node sends raw TCP and Pipe wraps as 'net.Native' handles (lib/internal/child_process.js);
      // its types only name the wrapper classes.
      this.#send({ type: 'listen', key }, sockets.handle(key) as unknown as Server);
    }
    this.#send(serve);
  }

  /** Where the worker is in its life. */
  get state(): WorkerState {
    return this.#state;
  }

  /** True once the worker has reported ready, whatever it does since. */
  get wasReady(): boolean {
    return this.#wasReady;
  }

  /** True once the master asked it to stop: its exit is then expected, not a crash. */
  get stopRequested(): boolean {
    return this.#stopRequested;
  }

  /** Asks the worker to stop accepting, finish what is in flight and exit (nginx's QUIT). */
  drain(): void {
    if (this.#state === 'exited' || this.#state === 'draining' || this.#state === 'terminating') return;
    this.#state = 'draining';
    this.#stopRequested = true;
    if (!this.#send({ type: 'drain' })) this.#signal('SIGQUIT');
  }

  /** Asks the worker to close every connection and exit now (nginx's TERM). */
  terminate(): void {
    if (this.#state === 'exited' || this.#state === 'terminating') return;
    this.#state = 'terminating';
    this.#stopRequested = true;
    if (!this.#send({ type: 'terminate' })) this.#signal('SIGTERM');
  }

  /** Asks the worker to reopen its log files. */
  reopen(): void {
    if (this.#state !== 'exited') this.#send({ type: 'reopen' });
  }

  /** Sends the worker the master's new session ticket keys, or a shared zone's. */
  ticketKeys(message: TicketKeyMessage): void {
    if (this.#state !== 'exited') this.#send(message);
  }

  /**
   * Sends a change of the certificate store; settles once the worker uses it, or once it can no
   * longer (it exited, or the channel is closed), since a gone worker serves no old certificate.
   */
  certificate(message: CertificateMessage): Promise<void> {
    if (this.#state === 'exited' || !this.#send(message)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#certificateAcks.set(message.seq, resolve);
      void this.exited.then(() => resolve());
    });
  }

  /**
   * Sends the worker the whole table of ACME challenges it answers (ipc.ts AcmeChallengesMessage);
   * settles once the worker answers from it (or has exited).
   */
  acmeChallenges(table: AcmeChallengeTable): Promise<void> {
    const seq = ++this.#acmeSeq;
    if (this.#state === 'exited' || !this.#send({ type: 'acme-challenges', seq, http: table.http, tlsAlpn: table.tlsAlpn })) return Promise.resolve();
    return new Promise((resolve) => {
      this.#acmeAcks.set(seq, resolve);
      void this.exited.then(() => resolve());
    });
  }

  /** Sends the worker the active health checks' table. */
  upstreamHealth(snapshot: HealthSnapshot): void {
    if (this.#state !== 'exited') this.#send({ type: 'upstream-health', snapshot });
  }

  /** Sends the worker a zone-shared peer's failure state. */
  peerFailures(message: PeerFailuresMessage): void {
    if (this.#state !== 'exited') this.#send(message);
  }

  /** Takes the sessions the worker learns for `sticky learn` (upstream/sticky-sessions.ts). */
  onStickyLearn(listener: (message: StickyLearnMessage) => void): void {
    this.#child.on('message', (message: unknown) => {
      if (isStickyLearn(message)) listener(message);
    });
  }

  /** Takes the worker's active connection counts of zone-shared peers (upstream/shared-peers.ts). */
  onPeerConns(listener: (message: PeerConnsMessage) => void): void {
    this.#child.on('message', (message: unknown) => {
      if (isPeerConns(message)) listener(message);
    });
  }

  /** Sends the worker the other workers' active connections to a zone-shared peer. */
  peerOtherConns(message: PeerOtherConnsMessage): void {
    if (this.#state !== 'exited') this.#send(message);
  }

  /** Sends the worker `sticky learn` sessions as the master holds them. */
  stickySessions(message: StickySessionsMessage): void {
    if (this.#state !== 'exited') this.#send(message);
  }

  /**
   * Asks the worker for every upstream peer's state as it sees it; settles with its answer, or
   * with why there is none (no answer within `timeoutMs`, exited, channel closed). Never rejects.
   */
  upstreamStates(timeoutMs: number): Promise<UpstreamStatesResult> {
    if (this.#state === 'exited') return Promise.resolve({ answered: false, error: 'exited' });
    const id = this.#nextQuestion++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle({ answered: false, error: `no answer in ${timeoutMs} ms` }), timeoutMs);
      const settle = (result: UpstreamStatesResult): void => {
        clearTimeout(timer);
        this.#stateQuestions.delete(id);
        resolve(result);
      };
      this.#stateQuestions.set(id, settle);
      if (!this.#send({ type: 'upstream-states', id })) settle({ answered: false, error: 'its channel is closed' });
    });
  }

  /** The counters the worker last reported (undefined before its first answer). */
  get lastCounts(): StubStatusCounts | undefined {
    return this.#lastCounts;
  }

  /** Asks the worker for its stub_status counters; undefined when it does not answer within `timeoutMs` or has exited. Never rejects. */
  stubStatus(timeoutMs: number): Promise<StubStatusCounts | undefined> {
    if (this.#state === 'exited') return Promise.resolve(undefined);
    const id = this.#nextQuestion++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      const settle = (counts: StubStatusCounts | undefined): void => {
        clearTimeout(timer);
        this.#statusQuestions.delete(id);
        resolve(counts);
      };
      this.#statusQuestions.set(id, settle);
      if (!this.#send({ type: 'stub-status', id })) settle(undefined);
    });
  }

  /** The worker's last metrics report (undefined before its first). */
  get lastMetrics(): MetricsReportMessage | undefined {
    return this.#lastMetrics;
  }

  /** When the worker's last metrics report arrived (Unix ms; undefined before its first). */
  get lastMetricsAt(): number | undefined {
    return this.#lastMetricsAt;
  }

  /** Asks the worker for its metrics; undefined when it does not answer within `timeoutMs` or has exited. Never rejects. */
  metrics(timeoutMs: number): Promise<MetricsReportMessage | undefined> {
    if (this.#state === 'exited') return Promise.resolve(undefined);
    const id = this.#nextQuestion++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      const settle = (report: MetricsReportMessage | undefined): void => {
        clearTimeout(timer);
        this.#metricsQuestions.delete(id);
        resolve(report);
      };
      this.#metricsQuestions.set(id, settle);
      if (!this.#send({ type: 'metrics', id })) settle(undefined);
    });
  }

  /** Kills the process outright (a worker that ignored `terminate`). */
  kill(): void {
    this.#stopRequested = true;
    this.#signal('SIGKILL');
  }

  #send(message: MasterToWorker | ZoneAnswerMessage | SessionAnswerMessage | StubStatusAnswerMessage | MetricsAnswerMessage | PeerFailuresMessage | PeerOtherConnsMessage | StickySessionsMessage, handle?: Server): boolean {
    if (!this.#child.connected) return false;
    try {
      // send() returning false only means Node queued the message; it is still delivered in order.
      if (handle === undefined) this.#child.send(message, () => undefined);
      else this.#child.send(message, handle, () => undefined);
      return true;
    } catch {
      return false;
    }
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#state === 'exited') return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone: its 'exit' event reports it.
    }
  }
}
