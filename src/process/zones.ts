/**
 * Shared zones across processes. nginx keeps `limit_req` and `limit_conn` state in shared memory
 * that every worker locks; Node workers share no memory, so the master holds the one
 * {@link ZoneStore} and answers each worker's question over the IPC channel it already has. The
 * master is single-threaded: every answer is atomic, as nginx's `ngx_shmtx_lock()` makes it.
 * One message (and its answer) per limited request, none for a location without limits; a
 * limit_conn request sends one more, unanswered, when it ends. See docs/process-model.md.
 */
import type { HitlessConfig } from '../conf/model.js';
import {
  releaseLimitConn,
  runLimitConn,
  runLimitReq,
  ZoneStore,
  type LimitConnAnswer,
  type LimitConnCheck,
  type LimitReqAnswer,
  type LimitReqCheck,
  type ZoneClient,
} from '../http/limits.js';
import type { StubStatusAnswerMessage, StubStatusRequestMessage, ZoneAnswerMessage, ZoneRequestMessage } from './ipc.js';
import { connectionStats, type StubStatusCounts } from '../core/connection-stats.js';
import { MasterSessionCaches } from './session-caches.js';

/** The master's side: the zones of every generation, kept across reloads while declared alike. */
export class MasterZones {
  readonly #store = new ZoneStore();
  /** The `ssl_session_cache shared:` zones (process/session-caches.ts). */
  readonly sessions = new MasterSessionCaches();

  /** Answers one worker question; undefined for a `release`, which needs no answer. */
  answer(message: ZoneRequestMessage): ZoneAnswerMessage | undefined {
    switch (message.op) {
      case 'req':
        return { type: 'zone-answer', id: message.id, answer: runLimitReq(this.#store, message.checks) };
      case 'conn':
        return { type: 'zone-answer', id: message.id, answer: runLimitConn(this.#store, message.checks) };
      case 'release':
        releaseLimitConn(this.#store, message.checks);
        return undefined;
    }
  }

  /**
   * Keeps the zones a new configuration declares with the same name and size, and frees the
   * others, as `ngx_init_cycle()` reuses or frees shared memory. A draining worker of the old
   * generation that still asks a freed zone gets a new, empty one.
   */
  retain(config: HitlessConfig): void {
    const http = config.main.child('http');
    // stream's limit_conn zones live here too; a name is never both (one shared memory namespace).
    const stream = config.main.child('stream');
    const ids = (zones: readonly { name: string; size: number }[] | undefined): Set<string> => new Set((zones ?? []).map((zone) => `${zone.name}:${zone.size}`));
    const conn = new Set([...ids(http?.get('limit_conn_zone')), ...ids(stream?.get('limit_conn_zone'))]);
    this.#store.retain(ids(http?.get('limit_req_zone')), conn);
    this.sessions.retain(config);
  }
}

/** The worker's side: asks the master, one message per question, matched to its answer by id. */
export class IpcZoneClient implements ZoneClient {
  readonly #send: (message: ZoneRequestMessage) => boolean;
  readonly #pending = new Map<number, (answer: LimitReqAnswer | LimitConnAnswer) => void>();
  #next = 1;

  /** `send` posts a message to the master and returns false when the channel is closed. */
  constructor(send: (message: ZoneRequestMessage) => boolean) {
    this.#send = send;
  }

  limitReq(checks: readonly LimitReqCheck[]): Promise<LimitReqAnswer> {
    return this.#ask('req', checks, { rc: 'declined' }) as Promise<LimitReqAnswer>;
  }

  limitConn(checks: readonly LimitConnCheck[]): Promise<LimitConnAnswer> {
    return this.#ask('conn', checks, { rc: 'passed' }) as Promise<LimitConnAnswer>;
  }

  releaseConn(checks: readonly LimitConnCheck[]): void {
    this.#send({ type: 'zone', id: 0, op: 'release', checks });
  }

  /** Settles the question an answer is for. */
  receive(message: ZoneAnswerMessage): void {
    const resolve = this.#pending.get(message.id);
    if (resolve === undefined) return;
    this.#pending.delete(message.id);
    resolve(message.answer);
  }

  /**
   * The master is gone: the questions in flight pass unlimited, as a worker without its master
   * only finishes what it has (it drains and exits).
   */
  failAll(): void {
    for (const [id, resolve] of this.#pending) {
      this.#pending.delete(id);
      resolve({ rc: 'declined' });
    }
  }

  #ask(op: 'req' | 'conn', checks: readonly LimitReqCheck[] | readonly LimitConnCheck[], unlimited: LimitReqAnswer | LimitConnAnswer): Promise<LimitReqAnswer | LimitConnAnswer> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, (answer) => resolve(answer.rc === 'declined' && op === 'conn' ? unlimited : answer));
      const message = op === 'req'
        ? { type: 'zone' as const, id, op, checks: checks as readonly LimitReqCheck[] }
        : { type: 'zone' as const, id, op, checks: checks as readonly LimitConnCheck[] };
      if (!this.#send(message)) {
        this.#pending.delete(id);
        resolve(unlimited);
      }
    });
  }
}

/** How long a worker waits for the master's stub_status sum before it answers with its own counters. */
const STUB_STATUS_WAIT_MS = 1000;

/** The worker's side of stub_status: asks the master for every worker's counters summed. */
export class IpcStubStatus {
  readonly #send: (message: StubStatusRequestMessage) => boolean;
  readonly #pending = new Map<number, (counts: StubStatusCounts | undefined) => void>();
  #next = 1;

  /** `send` posts a message to the master and returns false when the channel is closed. */
  constructor(send: (message: StubStatusRequestMessage) => boolean) {
    this.#send = send;
  }

  /** The sum; this worker's own counters if the master does not answer in time or is gone. */
  ask(): Promise<StubStatusCounts> {
    const id = this.#next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), STUB_STATUS_WAIT_MS);
      const settle = (counts: StubStatusCounts | undefined): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(counts ?? connectionStats.counts());
      };
      this.#pending.set(id, settle);
      if (!this.#send({ type: 'stub-status-request', id })) settle(undefined);
    });
  }

  /** Settles the question an answer is for. */
  receive(message: StubStatusAnswerMessage): void {
    this.#pending.get(message.id)?.(message.counts);
  }

  /** The master is gone: every question in flight gets this worker's own counters. */
  failAll(): void {
    for (const settle of [...this.#pending.values()]) settle(undefined);
  }
}
