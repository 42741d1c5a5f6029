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
import { createTicketKey } from '../tls/ticket-keys.js';
import type { SessionAnswerMessage, SessionRequestMessage, TicketKeyMessage, TicketKeysSnapshot } from './ipc.js';

/** How long a worker keeps a question the master has not answered. */
const FORGET_QUESTION_MS = 5000;

/**
 * The session ticket keys of a shared zone, as `ngx_ssl_rotate_ticket_keys()` keeps them in the
 * zone: the current key encrypts, the previous one still decrypts. nginx replaces the current key
 * at the first handshake after the previous one has outlived `ssl_session_timeout`; the master
 * cannot be asked in a handshake, so it replaces it every `ssl_session_timeout` (the shortest of
 * the zone's servers) from the first ticket a worker encrypted under it, and sends the keys to
 * every worker. A ticket then resumes for at least its timeout, as in nginx.
 */
interface ZoneTicketKeys {
  readonly zone: SharedSessionZone;
  keys: readonly string[];
  /** The shortest `ssl_session_timeout` of the zone's servers that take its keys, in the current configuration. */
  timeoutMs: number | undefined;
  /** How often the keys are replaced now; undefined until the first ticket under them. */
  periodMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** The master's side: the shared session zones of every generation, kept across reloads while declared alike. */
export class MasterSessionCaches {
  readonly #zones = new SessionZones();
  readonly #ticketKeys = new Map<string, ZoneTicketKeys>();
  /** Where a zone's new ticket keys go: every worker. Default: nowhere. */
  onTicketKeys: (message: TicketKeyMessage) => void = () => undefined;

  /** Stores a session, starts a zone's ticket key rotation, or answers a question; undefined for what needs no answer. */
  answer(message: SessionRequestMessage): SessionAnswerMessage | undefined {
    if (message.op === 'ticket-use') {
      const entry = this.#ticketKeys.get(zoneId({ name: message.zone, size: message.size }));
      if (entry !== undefined && entry.timer === undefined) this.#rotateEvery(entry, entry.timeoutMs ?? message.timeoutMs);
      return undefined;
    }
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
    const keep = zonesOf(config);
    this.#zones.retain(new Set(keep.keys()));
    for (const [id, { timeoutMs }] of keep) {
      const entry = this.#ticketKeys.get(id);
      if (entry === undefined) continue;
      entry.timeoutMs = timeoutMs;
      // A reload that changes the zone's timeout changes its rotation from now.
      if (entry.timer !== undefined && timeoutMs !== undefined && timeoutMs !== entry.periodMs) this.#rotateEvery(entry, timeoutMs);
    }
    // The ticket keys live in the zone, as nginx's cache->ticket_keys: kept with it, freed with it.
    for (const [id, entry] of this.#ticketKeys) {
      if (keep.has(id)) continue;
      clearInterval(entry.timer);
      this.#ticketKeys.delete(id);
    }
  }

  /** The ticket keys of the zones `config` declares (made for a zone new to the master), for a worker's {@link TicketKeysSnapshot}. */
  ticketKeys(config: HitlessConfig): TicketKeysSnapshot['zones'] {
    return [...zonesOf(config)].map(([id, { zone, timeoutMs }]) => {
      let entry = this.#ticketKeys.get(id);
      if (entry === undefined) {
        entry = { zone, keys: [createTicketKey().toString('base64')], timeoutMs, periodMs: undefined, timer: undefined };
        this.#ticketKeys.set(id, entry);
      }
      return { zone: zone.name, size: zone.size, keys: entry.keys };
    });
  }

  /** Stops every zone's rotation (the master exits). */
  stop(): void {
    for (const entry of this.#ticketKeys.values()) clearInterval(entry.timer);
  }

  /** Replaces a zone's keys every `periodMs` from now. */
  #rotateEvery(entry: ZoneTicketKeys, periodMs: number): void {
    const zone = entry.zone;
    clearInterval(entry.timer);
    entry.periodMs = periodMs;
    // At least a second: ssl_session_timeout 0 would spin.
    entry.timer = setInterval(() => {
      entry.keys = [createTicketKey().toString('base64'), ...entry.keys.slice(0, 1)];
      this.onTicketKeys({ type: 'ticket-key', zone: { name: zone.name, size: zone.size }, keys: entry.keys });
    }, Math.max(periodMs, 1000));
    entry.timer.unref();
  }
}

/**
 * The `ssl_session_cache shared:` zones of a configuration's http and stream servers, by
 * `name:size`, with the shortest `ssl_session_timeout` of the servers that take the zone's ticket
 * keys (tickets on, no `ssl_session_ticket_key`: tls/contexts.ts).
 */
function zonesOf(config: HitlessConfig): Map<string, { zone: SharedSessionZone; timeoutMs: number | undefined }> {
  const zones = new Map<string, { zone: SharedSessionZone; timeoutMs: number | undefined }>();
  const visit = (block: ConfBlockView): void => {
    const zone = block.get('ssl_session_cache').shared;
    if (zone !== undefined) {
      const id = zoneId(zone);
      const known = zones.get(id) ?? { zone, timeoutMs: undefined };
      const takesKeys = block.name === 'server' && block.get('ssl_session_tickets') && block.get('ssl_session_ticket_key').length === 0;
      const timeoutMs = block.get('ssl_session_timeout');
      if (takesKeys && (known.timeoutMs === undefined || timeoutMs < known.timeoutMs)) known.timeoutMs = timeoutMs;
      zones.set(id, known);
    }
    for (const server of block.blocks) if (server.name === 'server') visit(server);
  };
  for (const name of ['http', 'stream'] as const) {
    const block = config.main.child(name);
    if (block !== undefined) visit(block);
  }
  return zones;
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

  /** Tells the master the worker encrypted its first ticket under a zone's keys: the zone's rotation starts. */
  ticketUse(zone: SharedSessionZone, timeoutMs: number): void {
    this.#send({ type: 'ssl-session', op: 'ticket-use', zone: zone.name, size: zone.size, timeoutMs });
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
