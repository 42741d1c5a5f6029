/**
 * The sessions of `sticky learn`, shared among workers and kept across reloads. nginx keeps them
 * in the shared memory zone of `zone=name:size`, which every worker locks and a reload reuses
 * (ngx_http_upstream_sticky_sess_init_zone()). Node workers share no memory: each worker keeps a
 * replica of every zone and reads it at pick time without waiting; what a worker learns it
 * applies to its replica and tells the master, whose copy (atomic: the master is single-threaded)
 * decides the entry and sends it to every worker. A new worker (a reload, a respawn) gets the
 * master's whole copy as it starts. A worker that gets a request in the moment before the master's
 * copy of a new session reached it balances the request as a new one. Without a master (a runtime in tests) a worker's replica
 * is the only copy.
 */
import { createHash } from 'node:crypto';

/** nginx's estimate for a learn zone: "1m ~ 8000 sessions". */
const SESSION_BYTES = 131;

/** One learned session: the server ID it goes to and when it was last learned (ms). */
export interface LearnedEntry {
  readonly sid: string;
  readonly last: number;
}

/** How a zone is declared: its group, its size and its timeout. */
export interface LearnZoneSpec {
  readonly zone: string;
  readonly group: string;
  readonly zoneSize: number;
  readonly timeoutMs: number;
}

/** Worker to master: a session learned (created, refreshed or rebound). */
export interface StickyLearnMessage extends LearnZoneSpec {
  readonly type: 'sticky-learn';
  /** The MD5 of the session ID, in hex. */
  readonly key: string;
  readonly sid: string;
  /** True when the request's `create=` gave the session (else it is only refreshed if known). */
  readonly create: boolean;
  readonly now: number;
}

/** Master to worker: entries of zones, as the master holds them (all of them for a new worker). */
export interface StickySessionsMessage {
  readonly type: 'sticky-sessions';
  readonly zones: readonly { readonly spec: LearnZoneSpec; readonly entries: readonly (readonly [key: string, entry: LearnedEntry])[] }[];
}

/** True when an IPC message is a worker's learned session. */
export function isStickyLearn(message: unknown): message is StickyLearnMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'sticky-learn';
}

/** True when an IPC message is the master's sessions. */
export function isStickySessions(message: unknown): message is StickySessionsMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'sticky-sessions';
}

/** The key a session ID is kept under: its MD5, as nginx's session tree keys it. */
export function sessionKey(session: string): string {
  return createHash('md5').update(session, 'latin1').digest('hex');
}

/**
 * One zone's sessions, in the order they were last learned, so that the oldest go first, when
 * they time out and when the zone is full (nginx expires the least recently used session to make
 * room, ngx_http_upstream_sticky_sess_create()).
 */
export class LearnedSessions {
  readonly #byKey = new Map<string, LearnedEntry>();
  readonly #timeoutMs: number;
  readonly #capacity: number;

  constructor(timeoutMs: number, zoneSize: number) {
    this.#timeoutMs = timeoutMs;
    this.#capacity = Math.max(1, Math.floor(zoneSize / SESSION_BYTES));
  }

  /** The server ID of a live session, if any. */
  lookup(key: string, now: number): string | undefined {
    this.#expire(now);
    return this.#byKey.get(key)?.sid;
  }

  /**
   * ngx_http_upstream_sticky_learn_peer(): refreshes a known session (rebinding it to `sid`), or
   * creates it when `create`. Returns the entry as it is now, or undefined when none was made.
   */
  learn(key: string, sid: string, create: boolean, now: number): LearnedEntry | undefined {
    this.#expire(now);
    if (!this.#byKey.delete(key) && !create) return undefined;
    const entry = { sid, last: now };
    this.set(key, entry);
    return entry;
  }

  /** Puts an entry as the master decided it, the oldest going when the zone is full. */
  set(key: string, entry: LearnedEntry): void {
    this.#byKey.delete(key);
    if (this.#byKey.size >= this.#capacity) {
      const oldest = this.#byKey.keys().next();
      if (oldest.done !== true) this.#byKey.delete(oldest.value);
    }
    this.#byKey.set(key, entry);
  }

  /** Sessions held now. */
  get size(): number {
    return this.#byKey.size;
  }

  /** Every entry, oldest first. */
  entries(): [string, LearnedEntry][] {
    return [...this.#byKey];
  }

  #expire(now: number): void {
    for (const [key, entry] of this.#byKey) {
      if (now - entry.last < this.#timeoutMs) return;
      this.#byKey.delete(key);
    }
  }
}

/** The zones of one process, by name; a zone declared again alike (same group and size) keeps its sessions. */
class ZoneTable {
  readonly #zones = new Map<string, { spec: LearnZoneSpec; sessions: LearnedSessions }>();

  get(spec: LearnZoneSpec): LearnedSessions {
    const found = this.#zones.get(spec.zone);
    const same = found !== undefined && found.spec.group === spec.group && found.spec.zoneSize === spec.zoneSize && found.spec.timeoutMs === spec.timeoutMs;
    if (same) return found.sessions;
    const sessions = new LearnedSessions(spec.timeoutMs, spec.zoneSize);
    this.#zones.set(spec.zone, { spec, sessions });
    return sessions;
  }

  all(): { spec: LearnZoneSpec; sessions: LearnedSessions }[] {
    return [...this.#zones.values()];
  }
}

/** The worker's side: the replicas its balancers read, and where what it learns goes. */
export class StickySessions {
  readonly #zones = new ZoneTable();
  #send: ((message: StickyLearnMessage) => void) | undefined;

  /** Sets where learned sessions go (the worker's IPC channel); without it, nothing is shared. */
  useSender(send: (message: StickyLearnMessage) => void): void {
    this.#send = send;
  }

  /** The server ID a session goes to, if it is known and live. */
  lookup(spec: LearnZoneSpec, session: string, now: number): string | undefined {
    return this.#zones.get(spec).lookup(sessionKey(session), now);
  }

  /**
   * Learns a session here at once, and tells the master. A refresh of a session this worker does
   * not know goes nowhere: its request was not placed by the session (the master's copy may not
   * have reached this worker yet), and must not rebind it where the master knows it.
   */
  learn(spec: LearnZoneSpec, session: string, sid: string, create: boolean, now: number): void {
    const key = sessionKey(session);
    if (this.#zones.get(spec).learn(key, sid, create, now) === undefined) return;
    this.#send?.({ type: 'sticky-learn', ...pickSpec(spec), key, sid, create, now });
  }

  /** Takes the master's entries. */
  receive(message: StickySessionsMessage): void {
    for (const { spec, entries } of message.zones) {
      const sessions = this.#zones.get(spec);
      for (const [key, entry] of entries) sessions.set(key, entry);
    }
  }
}

/** The master's copy of every zone. */
export class MasterStickySessions {
  readonly #zones = new ZoneTable();

  /** Applies a worker's learned session; returns what to send every worker, or undefined when nothing changed. */
  apply(message: StickyLearnMessage): StickySessionsMessage | undefined {
    const spec = pickSpec(message);
    const entry = this.#zones.get(spec).learn(message.key, message.sid, message.create, message.now);
    return entry === undefined ? undefined : { type: 'sticky-sessions', zones: [{ spec, entries: [[message.key, entry]] }] };
  }

  /** Every zone's entries, for a worker that starts. */
  snapshot(): StickySessionsMessage {
    return { type: 'sticky-sessions', zones: this.#zones.all().map(({ spec, sessions }) => ({ spec, entries: sessions.entries() })) };
  }
}

function pickSpec(spec: LearnZoneSpec): LearnZoneSpec {
  return { zone: spec.zone, group: spec.group, zoneSize: spec.zoneSize, timeoutMs: spec.timeoutMs };
}
