/**
 * How long each upstream peer was down, for `hitless_upstream_peer_downtime_seconds_total`: the
 * time NGINX Plus's API counts as `downtime` (the peer `unavail`, `unhealthy` or `checking`) and
 * HAProxy's `haproxy_server_downtime_seconds_total` counts, kept by the master so that it survives
 * reloads and workers.
 *
 * The sources are the master's own active health checks and each worker's max_fails windows
 * (reported with its metrics every 100 ms while one is open). A peer is down while any source has
 * it down, as `GET /v1/upstreams` merges its state: overlapping windows of two workers count once.
 * A worker's window counts only up to the time of its latest report (it may end earlier than
 * fail_timeout says, by a success the next report tells), so the total never runs ahead of what is
 * known and never goes back; a window reported late by more than a scrape's interval loses what
 * another source had already counted past.
 */

/** One source's window: down from `since` to `until` (Unix ms), known to be true up to `knownAt`. */
interface Window {
  readonly since: number;
  until: number;
  knownAt: number;
}

interface PeerEntry {
  readonly group: string;
  readonly peer: string;
  totalMs: number;
  /** Everything before this is counted. */
  countedTo: number;
  readonly windows: Map<string, Window[]>;
}

/** The source name of the master's active health checks. */
const HEALTH = 'health';

/** One peer's out window as a source reports it: group, peer, since, until (Unix ms). */
export type DownWindow = readonly [group: string, peer: string, since: number, until: number];

/** Every peer's downtime, from every source. */
export class PeerDowntime {
  readonly #peers = new Map<string, PeerEntry>();
  /** The peers each source has windows for. */
  readonly #bySource = new Map<string, Set<string>>();

  /**
   * A worker's report made at `at`: its max_fails windows now (every peer out, or out since its
   * previous report). A window it reported before and leaves out now ended before `at`.
   */
  report(source: string, at: number, windows: readonly DownWindow[], now = Date.now()): void {
    const before = this.#bySource.get(source);
    const seen = new Set<string>();
    for (const [group, peer, since, until] of windows) {
      const entry = this.#entry(group, peer);
      const key = `${group}\0${peer}`;
      seen.add(key);
      const list = entry.windows.get(source) ?? [];
      entry.windows.set(source, list);
      const last = list[list.length - 1];
      if (last !== undefined && last.since === since) {
        last.until = until;
        last.knownAt = at;
      } else {
        if (last !== undefined) last.knownAt = Math.max(last.knownAt, Math.min(last.until, at));
        list.push({ since, until, knownAt: at });
      }
      this.#settle(entry, now);
    }
    for (const key of before ?? []) {
      if (seen.has(key)) continue;
      const entry = this.#peers.get(key);
      // Over between the two reports: counted up to the last time it was known.
      if (entry === undefined) continue;
      for (const window of entry.windows.get(source) ?? []) window.until = Math.min(window.until, window.knownAt);
      this.#settle(entry, now);
      entry.windows.delete(source);
    }
    this.#bySource.set(source, seen);
    this.#forgetSettled(source);
  }

  /** The active health check has the peer down (`unhealthy`, `checking`) from `at`. */
  healthDown(group: string, peer: string, at = Date.now()): void {
    const entry = this.#entry(group, peer);
    const list = entry.windows.get(HEALTH) ?? [];
    const last = list[list.length - 1];
    if (last !== undefined && last.until === Infinity) return;
    list.push({ since: at, until: Infinity, knownAt: Infinity });
    entry.windows.set(HEALTH, list);
    const keys = this.#bySource.get(HEALTH) ?? new Set();
    keys.add(`${group}\0${peer}`);
    this.#bySource.set(HEALTH, keys);
  }

  /** The active health check has the peer up again at `at`. */
  healthUp(group: string, peer: string, at = Date.now()): void {
    const entry = this.#peers.get(`${group}\0${peer}`);
    const last = entry?.windows.get(HEALTH)?.at(-1);
    if (entry === undefined || last === undefined || last.until !== Infinity) return;
    last.until = at;
    this.#settle(entry, at);
    this.#forgetSettled(HEALTH);
  }

  /** True when the active health check has the peer down now. */
  healthIsDown(group: string, peer: string): boolean {
    return this.#peers.get(`${group}\0${peer}`)?.windows.get(HEALTH)?.at(-1)?.until === Infinity;
  }

  /** The peers the health checks have down, as `group\0peer`. */
  healthDownPeers(): string[] {
    return [...(this.#bySource.get(HEALTH) ?? [])].filter((key) => this.#peers.get(key)?.windows.get(HEALTH)?.at(-1)?.until === Infinity);
  }

  /** A worker is gone: its windows end where its last report left them. */
  retire(source: string, now = Date.now()): void {
    for (const key of this.#bySource.get(source) ?? []) {
      const entry = this.#peers.get(key);
      if (entry === undefined) continue;
      for (const window of entry.windows.get(source) ?? []) window.until = Math.min(window.until, window.knownAt);
      this.#settle(entry, now);
      entry.windows.delete(source);
    }
    this.#bySource.delete(source);
  }

  /** Every peer that was ever down, with its downtime in seconds up to `now`. */
  totals(now = Date.now()): { group: string; peer: string; seconds: number }[] {
    const totals: { group: string; peer: string; seconds: number }[] = [];
    for (const entry of this.#peers.values()) {
      if (entry.windows.size > 0) this.#settle(entry, now);
      totals.push({ group: entry.group, peer: entry.peer, seconds: entry.totalMs / 1000 });
    }
    for (const source of this.#bySource.keys()) this.#forgetSettled(source);
    return totals;
  }

  #entry(group: string, peer: string): PeerEntry {
    const key = `${group}\0${peer}`;
    let entry = this.#peers.get(key);
    if (entry === undefined) this.#peers.set(key, (entry = { group, peer, totalMs: 0, countedTo: 0, windows: new Map() }));
    return entry;
  }

  /** Adds the union of the known parts of the windows past `countedTo`, up to `now`. */
  #settle(entry: PeerEntry, now: number): void {
    const spans: [number, number][] = [];
    for (const list of entry.windows.values()) {
      for (const window of list) {
        const start = Math.max(window.since, entry.countedTo);
        const end = Math.min(window.until, window.knownAt, now);
        if (end > start) spans.push([start, end]);
      }
    }
    if (spans.length === 0) return;
    spans.sort((a, b) => a[0] - b[0]);
    let [start, end] = spans[0] as [number, number];
    for (const [from, to] of spans.slice(1)) {
      if (from > end) {
        entry.totalMs += end - start;
        [start, end] = [from, to];
      } else if (to > end) {
        end = to;
      }
    }
    entry.totalMs += end - start;
    entry.countedTo = Math.max(entry.countedTo, end);
  }

  /** Drops a source's windows that are over and counted. */
  #forgetSettled(source: string): void {
    const keys = this.#bySource.get(source);
    if (keys === undefined) return;
    for (const key of keys) {
      const entry = this.#peers.get(key);
      const list = entry?.windows.get(source);
      if (entry === undefined || list === undefined) {
        keys.delete(key);
        continue;
      }
      const open = list.filter((window) => !(window.until <= window.knownAt && window.until <= entry.countedTo));
      if (open.length > 0) {
        entry.windows.set(source, open);
        continue;
      }
      entry.windows.delete(source);
      keys.delete(key);
    }
  }
}
