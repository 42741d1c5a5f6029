/**
 * The sockets a `stream` block listens on, apart from the rest of the stream runtime: the master
 * needs only this to know which sockets to own (process/listens.ts).
 */
import type { HitlessConfig } from '../conf/model.js';
import { groupListens, type ListenSpec } from '../http/listen.js';

/** The sockets a `stream` block listens on: nginx binds one per address:port, a wildcard serving the others of its port. */
export function collectStreamListens(config: HitlessConfig): ListenSpec[] {
  const stream = config.main.child('stream');
  if (stream === undefined) return [];
  return groupListens(stream).map((socket) => socket.spec);
}
