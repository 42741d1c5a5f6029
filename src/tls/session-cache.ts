/**
 * `ssl_session_cache`: resumption by session ID (TLSv1.2), as `ngx_ssl_session_cache()` sets it up.
 * Node creates every SecureContext with OpenSSL's internal store off (SSL_SESS_CACHE_NO_INTERNAL)
 * and reaches an external one only through the `newSession` and `resumeSession` events of the
 * `server` a TLSSocket is given (lib/_tls_wrap.js `onnewsession()`, `loadSession()`). hitless wraps
 * sockets itself, so {@link SessionCache.eventsFor} gives that `server`: a bare EventEmitter, which is all
 * _tls_wrap reads of it when the socket has its own SNICallback.
 *
 * `builtin` is a store of the worker; `shared` is one store in the master for every worker
 * (process/session-caches.ts), or of this process when there is no master. Session data holds the
 * master secret: it is never logged.
 */
import { EventEmitter } from 'node:events';
import type { SessionCacheSetting } from './ssl-module.js';

/** OpenSSL's SSL_SESSION_CACHE_MAX_SIZE_DEFAULT, nginx's `builtin` without a size. */
export const BUILTIN_SESSIONS_DEFAULT = 1024 * 20;

/** nginx: "one megabyte of the cache can store about 4000 sessions". */
const SESSIONS_PER_MEGABYTE = 4000;

/** How long a lookup waits for the master before the handshake goes on in full. */
const SHARED_LOOKUP_TIMEOUT_MS = 1000;

/** How many sessions a shared zone of `size` bytes keeps. */
export function sharedZoneSessions(size: number): number {
  return Math.max(1, Math.floor((size * SESSIONS_PER_MEGABYTE) / (1024 * 1024)));
}

/** Sessions by id (hex), least recently used first, each expiring `ssl_session_timeout` after it was stored. */
export class SessionStore {
  readonly #capacity: number;
  readonly #entries = new Map<string, { readonly data: Buffer; readonly expires: number }>();

  /** `capacity`: the most sessions kept; the least recently used goes first. */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** How many sessions are kept, expired ones included until they are looked up or pushed out. */
  get size(): number {
    return this.#entries.size;
  }

  /** Stores a session for `timeoutMs`, replacing one of the same id. */
  put(id: string, data: Buffer, timeoutMs: number, now = Date.now()): void {
    this.#entries.delete(id);
    this.#entries.set(id, { data, expires: now + timeoutMs });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#capacity) break;
      this.#entries.delete(oldest);
    }
  }

  /** The session of `id` when it has not expired; a hit makes it the most recently used. */
  get(id: string, now = Date.now()): Buffer | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    this.#entries.delete(id);
    if (entry.expires <= now) return undefined;
    this.#entries.set(id, entry);
    return entry.data;
  }
}

/** A `shared:name:size` zone. */
export interface SharedSessionZone {
  readonly name: string;
  readonly size: number;
}

/** Session stores by zone name and size: a zone kept with both unchanged keeps its sessions. */
export class SessionZones {
  readonly #zones = new Map<string, SessionStore>();

  /** The store of a zone, created empty on first use. */
  zone(zone: SharedSessionZone): SessionStore {
    const id = zoneId(zone);
    let store = this.#zones.get(id);
    if (store === undefined) {
      store = new SessionStore(sharedZoneSessions(zone.size));
      this.#zones.set(id, store);
    }
    return store;
  }

  /** Frees the zones whose `name:size` is not in `keep`, as `ngx_init_cycle()` frees unused shared memory. */
  retain(keep: ReadonlySet<string>): void {
    for (const id of this.#zones.keys()) if (!keep.has(id)) this.#zones.delete(id);
  }
}

/** The `name:size` that identifies a zone across reloads. */
export function zoneId(zone: SharedSessionZone): string {
  return `${zone.name}:${zone.size}`;
}

/** Where `shared` sessions live: the master's store in a worker, this process's otherwise. */
export interface SharedSessions {
  /** Stores a session; fire and forget. */
  put(zone: SharedSessionZone, id: string, data: Buffer, timeoutMs: number): void;
  /** The session of `id`, or undefined (not found, expired, or no answer in time). */
  get(zone: SharedSessionZone, id: string): Promise<Buffer | undefined>;
}

/** The shared zones of this process, answered at once: a runtime without a master, and tests. */
export class LocalSharedSessions implements SharedSessions {
  readonly #zones = new SessionZones();

  put(zone: SharedSessionZone, id: string, data: Buffer, timeoutMs: number): void {
    this.#zones.zone(zone).put(id, data, timeoutMs);
  }

  get(zone: SharedSessionZone, id: string): Promise<Buffer | undefined> {
    return Promise.resolve(this.#zones.zone(zone).get(id));
  }
}

/**
 * The session cache of one server (`ngx_ssl_session_cache()`): `off` and `none` keep nothing and
 * make none (undefined from {@link SessionCache.of}); `builtin` keeps sessions in this worker,
 * `shared` in the zone; with both, a session goes to both and is looked up in `builtin` first, as
 * OpenSSL's internal store comes before nginx's `ngx_ssl_get_cached_session()`.
 */
export class SessionCache {
  readonly #builtin: SessionStore | undefined;
  readonly #shared: SharedSessionZone | undefined;
  readonly #timeoutMs: number;
  readonly #events = new WeakMap<SharedSessions, EventEmitter>();

  private constructor(builtin: SessionStore | undefined, sharedZone: SharedSessionZone | undefined, timeoutMs: number) {
    this.#builtin = builtin;
    this.#shared = sharedZone;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * What a TLSSocket is given as `server`: Node emits the session events on it. `shared` is where
   * this process keeps `shared:` zones (the master's, over IPC, in a worker); one emitter per store.
   */
  eventsFor(shared: SharedSessions): EventEmitter {
    let events = this.#events.get(shared);
    if (events !== undefined) return events;
    events = new EventEmitter();
    events.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      this.store(id.toString('hex'), data, shared);
      // The handshake waits for this callback (onnewsession()); a shared store is not waited for.
      done();
    });
    events.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
      this.lookup(id.toString('hex'), shared, (data) => done(null, data ?? null));
    });
    this.#events.set(shared, events);
    return events;
  }

  /** The cache an `ssl_session_cache` setting asks for, or undefined when it stores nothing. */
  static of(setting: SessionCacheSetting, timeoutMs: number): SessionCache | undefined {
    const { builtin } = setting;
    if (builtin === 'off' || builtin === 'none') return undefined;
    const store = builtin === undefined ? undefined : new SessionStore(builtin === 'default' ? BUILTIN_SESSIONS_DEFAULT : builtin);
    if (store === undefined && setting.shared === undefined) return undefined;
    return new SessionCache(store, setting.shared, timeoutMs);
  }

  /** Stores a new session under its id (hex). */
  store(id: string, data: Buffer, shared: SharedSessions): void {
    this.#builtin?.put(id, data, this.#timeoutMs);
    if (this.#shared !== undefined) shared.put(this.#shared, id, data, this.#timeoutMs);
  }

  /** Looks a session up; `done` gets undefined for a full handshake. */
  lookup(id: string, shared: SharedSessions, done: (data: Buffer | undefined) => void): void {
    const local = this.#builtin?.get(id);
    if (local !== undefined || this.#shared === undefined) {
      done(local);
      return;
    }
    let settled = false;
    const settle = (data: Buffer | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done(data);
    };
    const timer = setTimeout(() => settle(undefined), SHARED_LOOKUP_TIMEOUT_MS);
    timer.unref();
    shared.get(this.#shared, id).then(settle, () => settle(undefined));
  }
}
