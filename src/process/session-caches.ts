/**
 * `ssl_session_cache shared:name:size` across processes. nginx keeps the sessions in shared memory
 * every worker locks (`ngx_ssl_new_session()`, `ngx_ssl_get_cached_session()`); Node workers share
 * no memory, so the master holds the zones and answers over the IPC channel, as process/zones.ts
 * does for limit_req. A new session is sent and not waited for; a lookup waits for the answer
 * (bounded in tls/session-cache.ts). The master is single-threaded: every answer is atomic.
 * The session data (which holds the master secret) is never logged.
 */
import type { HitlessConfig } from '../conf/model.js';
import type { ConfBlockView } from '../conf/registry.js';
import { SessionZones, zoneId, type SharedSessionZone, type SharedSessions } from '../tls/session-cache.js';
import type { SessionAnswerMessage, SessionRequestMessage } from './ipc.js';

/** How long a worker keeps a question the master has not answered. */
const FORGET_QUESTION_MS = 5000;

/** The master's side: the shared session zones of every generation, kept across reloads while declared alike. */
export class MasterSessionCaches {
  readonly #zones = new SessionZones();

  /** Stores a session, or answers a question; undefined for a `put`, which needs no answer. */
  answer(message: SessionRequestMessage): SessionAnswerMessage | undefined {
    const store = this.#zones.zone({ name: message.zone, size: message.size });
    if (message.op === 'put') {
      store.put(message.session, Buffer.from(message.data, 'base64'), message.timeoutMs);
      return undefined;
    }
    const data = store.get(message.session);
    return { type: 'ssl-session-answer', id: message.id, data: data === undefined ? null : data.toString('base64') };
  }

  /**
   * Keeps the zones a new configuration declares with the same name and size, and frees the
   * others, as `ngx_init_cycle()` reuses or frees shared memory.
   */
  retain(config: HitlessConfig): void {
    const keep = new Set<string>();
    const visit = (block: ConfBlockView): void => {
      const zone = block.get('ssl_session_cache').shared;
      if (zone !== undefined) keep.add(zoneId(zone));
      for (const server of block.blocks) if (server.name === 'server') visit(server);
    };
    for (const name of ['http', 'stream'] as const) {
      const block = config.main.child(name);
      if (block !== undefined) visit(block);
    }
    this.#zones.retain(keep);
  }
}

/** The worker's side: sends new sessions to the master and asks it for offered ones. */
export class IpcSharedSessions implements SharedSessions {
  readonly #send: (message: SessionRequestMessage) => boolean;
  readonly #pending = new Map<number, { readonly resolve: (data: Buffer | undefined) => void; readonly timer: NodeJS.Timeout }>();
  #next = 1;

  /** `send` posts a message to the master and returns false when the channel is closed. */
  constructor(send: (message: SessionRequestMessage) => boolean) {
    this.#send = send;
  }

  put(zone: SharedSessionZone, id: string, data: Buffer, timeoutMs: number): void {
    this.#send({ type: 'ssl-session', op: 'put', zone: zone.name, size: zone.size, session: id, data: data.toString('base64'), timeoutMs });
  }

  get(zone: SharedSessionZone, id: string): Promise<Buffer | undefined> {
    const question = this.#next++;
    return new Promise((resolve) => {
      // The caller stops waiting sooner (tls/session-cache.ts); an answer that never comes must not keep the entry.
      const timer = setTimeout(() => this.#settle(question, undefined), FORGET_QUESTION_MS).unref();
      this.#pending.set(question, { resolve, timer });
      if (!this.#send({ type: 'ssl-session', op: 'get', id: question, zone: zone.name, size: zone.size, session: id })) this.#settle(question, undefined);
    });
  }

  /** Settles the question an answer is for. */
  receive(message: SessionAnswerMessage): void {
    this.#settle(message.id, message.data === null ? undefined : Buffer.from(message.data, 'base64'));
  }

  /** The master is gone: every question in flight gets a full handshake. */
  failAll(): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, undefined);
  }

  #settle(id: number, data: Buffer | undefined): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(data);
  }
}
