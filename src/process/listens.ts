/**
 * The sockets a configuration listens on, which is all the master needs of the http and stream
 * layers: it loads neither runtime (a worker does), so that its memory is the configuration's.
 */
import type { HitlessConfig } from '../conf/model.js';
import { ConfigError } from '../core/errors.js';
import { collectHttpListens, type ListenSpec } from '../http/listen.js';
import { collectStreamListens } from '../stream/listens.js';

/**
 * Every socket a configuration listens on, http's then stream's. The same address and port in both
 * is the bind() conflict nginx meets when it opens the second (`-t` does not bind, and passes).
 */
export function collectListens(config: HitlessConfig): ListenSpec[] {
  const http = collectHttpListens(config);
  const stream = collectStreamListens(config);
  const keys = new Set(http.map((spec) => spec.key));
  for (const spec of stream) {
    if (keys.has(spec.key)) {
      const address = spec.path !== undefined ? `unix:${spec.path}` : spec.key.startsWith('*:') ? `0.0.0.0${spec.key.slice(1)}` : spec.key;
      throw new ConfigError(`bind() to ${address} failed (98: Address already in use)`, undefined);
    }
  }
  return [...http, ...stream];
}
