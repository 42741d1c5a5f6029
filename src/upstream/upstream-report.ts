/**
 * What `GET /v1/upstreams` answers: every peer of every group, merged from the master's active
 * health checks and each worker's passive view (its connections, requests and max_fails state),
 * which the master gathers over IPC with a deadline. A worker that did not answer in time is
 * listed as such and left out of the counts, never waited for.
 */
import type { PeerState, PeerStateName } from './group.js';
import type { CheckedPeerState } from './health/active.js';

/** One worker's answer, or why there is none. */
export type WorkerUpstreamAnswer =
  | { readonly pid: number; readonly generation: number; readonly answered: true; readonly states: readonly PeerState[] }
  | { readonly pid: number; readonly generation: number; readonly answered: false; readonly error: string };

/** One peer as one worker sees it. */
export interface WorkerPeerView {
  readonly pid: number;
  readonly state: PeerStateName;
  /** Requests and connections in progress to the peer from this worker. */
  readonly active: number;
  /** The other workers' active connections as this one last heard (a `zone` group of least_conn or random two). */
  readonly otherActive?: number;
  readonly requests: number;
  /** Failures within the current fail_timeout window (max_fails counts these). */
  readonly fails: number;
  readonly failures: number;
  readonly unavail: number;
  /** The method's own view (`ewma`: latencyMs, cost). */
  readonly balancer?: Readonly<Record<string, number>>;
}

/** One peer, every view merged. */
export interface UpstreamPeerReport {
  readonly peer: string;
  readonly server: string;
  readonly backup: boolean;
  readonly weight: number;
  readonly drain: boolean;
  readonly maxFails: number;
  readonly maxConns: number;
  /**
   * The worst state any view gives: `down`, `unhealthy` or `checking` (the master's active check),
   * `unavailable` (max_fails in at least one worker; in all of them with `zone`), `full`,
   * `draining`, `up`.
   */
  readonly state: PeerStateName;
  /** Summed over the workers that answered. */
  readonly active: number;
  readonly requests: number;
  readonly failures: number;
  readonly unavail: number;
  /** The highest count of recent failures among the workers (equal in all of them with `zone`). */
  readonly fails: number;
  /** The master's active check of the peer, or null when no `health_check` covers its group. */
  readonly health: Omit<CheckedPeerState, 'group' | 'peer' | 'lastError'> & { readonly lastError: string | null } | null;
  readonly workers: readonly WorkerPeerView[];
}

/** One group. */
export interface UpstreamGroupReport {
  readonly name: string;
  /** `round_robin`, `least_conn`, `ip_hash`, `hash`, `random`, `ewma`; null when no worker answered. */
  readonly method: string | null;
  readonly zone: boolean;
  /** True for the group of a `proxy_pass` to a host without an `upstream` block. */
  readonly implicit: boolean;
  readonly peers: readonly UpstreamPeerReport[];
}

/** `GET /v1/upstreams`. */
export interface UpstreamsReport {
  /** The configuration generation whose workers were asked. */
  readonly generation: number;
  /** How long each worker had to answer, ms. */
  readonly timeoutMs: number;
  readonly workers: readonly ({ readonly pid: number; readonly answered: true } | { readonly pid: number; readonly answered: false; readonly error: string })[];
  readonly upstreams: readonly UpstreamGroupReport[];
}

/**
 * What a metrics answer carries of a worker's peers: per group, each peer's name, state and active
 * count, all the exposition reads. A tenth of the {@link PeerState} objects' size over IPC, which the
 * master parses on every scrape: with 10,000 peers the full objects were most of a scrape's time.
 */
export type CompactPeerStates = readonly (readonly [group: string, peers: readonly (readonly [peer: string, state: PeerStateName, conns: number])[]])[];

/** The compact form of `states`. */
export function compactPeerStates(states: readonly PeerState[]): CompactPeerStates {
  const groups = new Map<string, [string, PeerStateName, number][]>();
  for (const state of states) {
    let peers = groups.get(state.group);
    if (peers === undefined) groups.set(state.group, (peers = []));
    peers.push([state.peer, state.state, state.conns]);
  }
  return [...groups];
}

/** Peer states again from the compact form, with neutral values for what it leaves out (weight 1, no limits). */
export function expandPeerStates(compact: CompactPeerStates): PeerState[] {
  const states: PeerState[] = [];
  for (const [group, peers] of compact) {
    for (const [peer, state, conns] of peers) {
      states.push({ group, peer, server: peer, backup: false, state, health: undefined, weight: 1, conns, fails: 0, maxFails: 0, maxConns: 0 });
    }
  }
  return states;
}

/** States worst first: the merged state is the first any view gives. */
const RANK: readonly PeerStateName[] = ['down', 'unhealthy', 'checking', 'unavailable', 'full', 'draining', 'up'];

function worst(states: readonly PeerStateName[]): PeerStateName {
  return RANK.find((state) => states.includes(state)) ?? 'up';
}

/** Merges the workers' answers and the master's health checks into the report. */
export function buildUpstreamsReport(generation: number, timeoutMs: number, answers: readonly WorkerUpstreamAnswer[], health: readonly CheckedPeerState[]): UpstreamsReport {
  interface GroupDraft { method: string | null; zone: boolean; implicit: boolean; peers: Map<string, { first: PeerState; views: WorkerPeerView[] }> }
  const groups = new Map<string, GroupDraft>();
  const groupOf = (name: string): GroupDraft => {
    let group = groups.get(name);
    if (group === undefined) groups.set(name, (group = { method: null, zone: false, implicit: false, peers: new Map() }));
    return group;
  };
  for (const answer of answers) {
    if (!answer.answered) continue;
    for (const state of answer.states) {
      const group = groupOf(state.group);
      group.method = state.method ?? group.method;
      group.zone = state.zone ?? group.zone;
      group.implicit = state.implicit ?? group.implicit;
      let peer = group.peers.get(state.peer);
      if (peer === undefined) group.peers.set(state.peer, (peer = { first: state, views: [] }));
      peer.views.push({
        pid: answer.pid,
        state: state.state,
        active: state.conns,
        ...(state.otherConns === undefined ? {} : { otherActive: state.otherConns }),
        requests: state.requests ?? 0,
        fails: state.fails,
        failures: state.failures ?? 0,
        unavail: state.unavail ?? 0,
        ...(state.balancer === undefined ? {} : { balancer: state.balancer }),
      });
    }
  }
  const checks = new Map(health.map((check) => [`${check.group}\0${check.peer}`, check]));
  const upstreams: UpstreamGroupReport[] = [...groups].map(([name, group]) => ({
    name,
    method: group.method,
    zone: group.zone,
    implicit: group.implicit,
    peers: [...group.peers.values()].map(({ first, views }) => {
      const check = checks.get(`${name}\0${first.peer}`);
      checks.delete(`${name}\0${first.peer}`);
      const sum = (key: 'active' | 'requests' | 'failures' | 'unavail'): number => views.reduce((total, view) => total + view[key], 0);
      const states = views.map((view) => view.state);
      if (first.state === 'down') states.push('down');
      if (check !== undefined && check.state !== 'up') states.push(check.state);
      return {
        peer: first.peer,
        server: first.server,
        backup: first.backup,
        weight: first.weight,
        drain: first.drain ?? false,
        maxFails: first.maxFails,
        maxConns: first.maxConns,
        state: worst(states),
        active: sum('active'),
        requests: sum('requests'),
        failures: sum('failures'),
        unavail: sum('unavail'),
        fails: Math.max(0, ...views.map((view) => view.fails)),
        health: check === undefined ? null : healthOf(check),
        workers: views,
      };
    }),
  }));
  // Groups only the checker knows (no worker answered): their check is all there is to say.
  const byGroup = new Map<string, CheckedPeerState[]>();
  for (const check of checks.values()) byGroup.set(check.group, [...(byGroup.get(check.group) ?? []), check]);
  for (const [name, peers] of byGroup) {
    const known = upstreams.find((group) => group.name === name);
    const reports = peers.map((check): UpstreamPeerReport => ({
      peer: check.peer,
      server: check.peer,
      backup: false,
      weight: 1,
      drain: false,
      maxFails: 0,
      maxConns: 0,
      state: check.state,
      active: 0,
      requests: 0,
      failures: 0,
      unavail: 0,
      fails: 0,
      health: healthOf(check),
      workers: [],
    }));
    if (known !== undefined) (known.peers as UpstreamPeerReport[]).push(...reports);
    else upstreams.push({ name, method: null, zone: false, implicit: false, peers: reports });
  }
  return {
    generation,
    timeoutMs,
    workers: answers.map((answer) => (answer.answered ? { pid: answer.pid, answered: true as const } : { pid: answer.pid, answered: false as const, error: answer.error })),
    upstreams,
  };
}

function healthOf(check: CheckedPeerState): NonNullable<UpstreamPeerReport['health']> {
  return { state: check.state, fails: check.fails, passes: check.passes, checks: check.checks, lastError: check.lastError ?? null };
}
