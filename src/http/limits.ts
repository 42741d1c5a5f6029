/**
 * The shared zones of `limit_req` and `limit_conn`: nginx's shared-memory state
 * (`ngx_http_limit_req_lookup()`, `ngx_http_limit_req_account()`, `ngx_http_limit_req_expire()`,
 * `ngx_http_limit_conn_handler()`), as plain state machines. One {@link ZoneStore} holds every
 * zone of a process: the master's (shared by all workers, see src/process/zones.ts), or the
 * worker's own when it runs without a master (tests, tools). A request reaches them through a
 * {@link ZoneClient}, one message per limited request.
 */

/** One `limit_req` of a location, as the zone sees it. */
export interface LimitReqCheck {
  readonly zone: string;
  /** The zone's size in bytes: a zone is the same zone across a reload only with the same name and size. */
  readonly size: number;
  /** Requests per second, in milli-requests (`rate=1r/m` is 16, as nginx's integer arithmetic makes it). */
  readonly rate: number;
  /** `burst`, in milli-requests. */
  readonly burst: number;
  /** `delay`, in milli-requests (`nodelay` is a very large number). */
  readonly delay: number;
  readonly key: string;
}

/** What the limit_req handler decides (`NGX_DECLINED`, `NGX_BUSY`, `NGX_ERROR`, or passed with a delay). */
export type LimitReqAnswer =
  | { readonly rc: 'declined' }
  | { readonly rc: 'busy'; readonly excess: number; readonly index: number }
  | { readonly rc: 'error'; readonly index: number }
  | { readonly rc: 'ok'; readonly excess: number; readonly delayMs: number; readonly index: number };

/** One `limit_conn` of a location, as the zone sees it. */
export interface LimitConnCheck {
  readonly zone: string;
  readonly size: number;
  readonly key: string;
  readonly conn: number;
}

/** What the limit_conn handler decides: every key counted, or the index of the limit that refused. */
export type LimitConnAnswer = { readonly rc: 'passed' } | { readonly rc: 'rejected' | 'nomem'; readonly index: number };

/** How a worker reaches the zones. */
export interface ZoneClient {
  limitReq(checks: readonly LimitReqCheck[]): Promise<LimitReqAnswer>;
  limitConn(checks: readonly LimitConnCheck[]): Promise<LimitConnAnswer>;
  /** Gives back what {@link limitConn} counted, when the request ends. */
  releaseConn(checks: readonly LimitConnCheck[]): void;
}

/** nginx's slab allocator hands out power-of-two chunks: a node costs its header and key, rounded up. */
function nodeBytes(header: number, key: string): number {
  let size = 8;
  while (size < header + key.length) size *= 2;
  return size;
}

/** `ngx_current_msec`: milliseconds on a clock that does not go back. */
function nowMs(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}

interface ReqNode {
  excess: number;
  last: number;
  count: number;
}

/** A `limit_req_zone`: the rbtree and LRU queue of nginx, as a Map in least-recently-used order. */
export class LimitReqZone {
  readonly size: number;
  readonly #nodes = new Map<string, ReqNode>();
  #used = 0;

  constructor(size: number) {
    this.size = size;
  }

  /** The number of keys the zone holds. */
  get keys(): number {
    return this.#nodes.size;
  }

  /** `ngx_http_limit_req_lookup()`. */
  lookup(check: LimitReqCheck, account: boolean, now: number): { rc: 'busy' | 'ok' | 'again' | 'error'; excess: number; node?: ReqNode } {
    const found = this.#nodes.get(check.key);
    if (found !== undefined) {
      // Bump to the head of the queue (the Map's end).
      this.#nodes.delete(check.key);
      this.#nodes.set(check.key, found);
      let ms = now - found.last;
      if (ms < -60000) ms = 1;
      else if (ms < 0) ms = 0;
      const excess = Math.max(0, found.excess - Math.floor((check.rate * ms) / 1000) + 1000);
      if (excess > check.burst) return { rc: 'busy', excess };
      if (account) {
        found.excess = excess;
        if (ms !== 0) found.last = now;
        return { rc: 'ok', excess };
      }
      found.count++;
      return { rc: 'again', excess, node: found };
    }
    const bytes = nodeBytes(80, check.key);
    this.#expire(check.rate, 1, now);
    if (this.#used + bytes > this.size) {
      this.#expire(check.rate, 0, now);
      if (this.#used + bytes > this.size) return { rc: 'error', excess: 0 };
    }
    this.#used += bytes;
    const node: ReqNode = account ? { excess: 0, last: now, count: 0 } : { excess: 0, last: 0, count: 1 };
    this.#nodes.set(check.key, node);
    return account ? { rc: 'ok', excess: 0 } : { rc: 'again', excess: 0, node };
  }

  /** `ngx_http_limit_req_expire()`: n = 1 frees one or two idle entries, n = 0 also the oldest by force. */
  #expire(rate: number, n: number, now: number): void {
    while (n < 3) {
      const oldest = this.#nodes.entries().next();
      if (oldest.done === true) return;
      const [key, node] = oldest.value;
      if (node.count !== 0) return;
      if (n++ !== 0) {
        const ms = Math.abs(now - node.last);
        if (ms < 60000) return;
        if (node.excess - Math.floor((rate * ms) / 1000) > 0) return;
      }
      this.#nodes.delete(key);
      this.#used -= nodeBytes(80, key);
    }
  }
}

/** nginx's `ngx_http_limit_req_handler()` with the lookups and `ngx_http_limit_req_account()`, atomically. */
export function runLimitReq(store: ZoneStore, checks: readonly LimitReqCheck[]): LimitReqAnswer {
  const now = nowMs();
  const pending: (ReqNode | undefined)[] = [];
  const release = (): void => {
    for (const node of pending) if (node !== undefined) node.count--;
  };
  for (let n = 0; n < checks.length; n++) {
    const check = checks[n] as LimitReqCheck;
    const result = store.req(check.zone, check.size).lookup(check, n === checks.length - 1, now);
    if (result.rc === 'busy') {
      release();
      return { rc: 'busy', excess: result.excess, index: n };
    }
    if (result.rc === 'error') {
      release();
      return { rc: 'error', index: n };
    }
    if (result.rc === 'ok') return account(checks, pending, n, result.excess, now);
    pending.push(result.node);
  }
  return account(checks, pending, checks.length - 1, 0, now);
}

function account(checks: readonly LimitReqCheck[], pending: readonly (ReqNode | undefined)[], last: number, lastExcess: number, now: number): LimitReqAnswer {
  const limit = checks[last] as LimitReqCheck;
  let index = last;
  let excess = lastExcess;
  let maxDelay = excess <= limit.delay ? 0 : Math.floor(((excess - limit.delay) * 1000) / limit.rate);
  for (let n = pending.length - 1; n >= 0; n--) {
    const node = pending[n];
    const check = checks[n] as LimitReqCheck;
    if (node === undefined) continue;
    let ms = now - node.last;
    if (ms < -60000) ms = 1;
    else if (ms < 0) ms = 0;
    const nodeExcess = Math.max(0, node.excess - Math.floor((check.rate * ms) / 1000) + 1000);
    if (ms !== 0) node.last = now;
    node.excess = nodeExcess;
    node.count--;
    if (nodeExcess <= check.delay) continue;
    const delay = Math.floor(((nodeExcess - check.delay) * 1000) / check.rate);
    if (delay > maxDelay) {
      maxDelay = delay;
      excess = nodeExcess;
      index = n;
    }
  }
  return { rc: 'ok', excess, delayMs: maxDelay, index };
}

/** A `limit_conn_zone`: a count per key, freed when it drops to zero. */
export class LimitConnZone {
  readonly size: number;
  readonly #counts = new Map<string, number>();
  #used = 0;

  constructor(size: number) {
    this.size = size;
  }

  /** The count of one key (0 when absent). */
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Counts one more connection for `key`; `rejected` at the limit, `nomem` when the zone is full. */
  acquire(key: string, limit: number): 'passed' | 'rejected' | 'nomem' {
    const count = this.#counts.get(key);
    if (count === undefined) {
      const bytes = nodeBytes(48, key);
      if (this.#used + bytes > this.size) return 'nomem';
      this.#used += bytes;
      this.#counts.set(key, 1);
      return 'passed';
    }
    if (count >= limit) return 'rejected';
    this.#counts.set(key, count + 1);
    return 'passed';
  }

  /** `ngx_http_limit_conn_cleanup()`. */
  release(key: string): void {
    const count = this.#counts.get(key);
    if (count === undefined) return;
    if (count > 1) {
      this.#counts.set(key, count - 1);
      return;
    }
    this.#counts.delete(key);
    this.#used -= nodeBytes(48, key);
  }
}

/** `ngx_http_limit_conn_handler()`: every key counted, or none (`ngx_http_limit_conn_cleanup_all()`). */
export function runLimitConn(store: ZoneStore, checks: readonly LimitConnCheck[]): LimitConnAnswer {
  for (let i = 0; i < checks.length; i++) {
    const check = checks[i] as LimitConnCheck;
    const rc = store.conn(check.zone, check.size).acquire(check.key, check.conn);
    if (rc === 'passed') continue;
    releaseLimitConn(store, checks.slice(0, i));
    return { rc, index: i };
  }
  return { rc: 'passed' };
}

/** Gives back the counts of {@link runLimitConn}. */
export function releaseLimitConn(store: ZoneStore, checks: readonly LimitConnCheck[]): void {
  for (const check of checks) store.conn(check.zone, check.size).release(check.key);
}

/**
 * Every zone of a process, by kind, name and size: a reload that keeps a zone's name and size keeps
 * its state, as nginx reuses a shared memory zone of the same name and size (`ngx_init_cycle()`).
 */
export class ZoneStore {
  readonly #req = new Map<string, LimitReqZone>();
  readonly #conn = new Map<string, LimitConnZone>();

  /** The limit_req zone `name` of `size` bytes, created on first use. */
  req(name: string, size: number): LimitReqZone {
    const id = `${name}:${size}`;
    let zone = this.#req.get(id);
    if (zone === undefined) {
      zone = new LimitReqZone(size);
      this.#req.set(id, zone);
    }
    return zone;
  }

  /** The limit_conn zone `name` of `size` bytes, created on first use. */
  conn(name: string, size: number): LimitConnZone {
    const id = `${name}:${size}`;
    let zone = this.#conn.get(id);
    if (zone === undefined) {
      zone = new LimitConnZone(size);
      this.#conn.set(id, zone);
    }
    return zone;
  }

  /** Drops every zone a configuration no longer declares (nginx frees the old cycle's unused zones). */
  retain(req: ReadonlySet<string>, conn: ReadonlySet<string>): void {
    for (const id of this.#req.keys()) if (!req.has(id)) this.#req.delete(id);
    for (const id of this.#conn.keys()) if (!conn.has(id)) this.#conn.delete(id);
  }
}

/** The zones of this process, answered at once: a worker without a master, and tests. */
export class LocalZoneClient implements ZoneClient {
  readonly #store: ZoneStore;

  constructor(store: ZoneStore = new ZoneStore()) {
    this.#store = store;
  }

  limitReq(checks: readonly LimitReqCheck[]): Promise<LimitReqAnswer> {
    return Promise.resolve(runLimitReq(this.#store, checks));
  }

  limitConn(checks: readonly LimitConnCheck[]): Promise<LimitConnAnswer> {
    return Promise.resolve(runLimitConn(this.#store, checks));
  }

  releaseConn(checks: readonly LimitConnCheck[]): void {
    releaseLimitConn(this.#store, checks);
  }
}
