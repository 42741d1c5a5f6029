/**
 * Stream modules that share a directive with their http counterpart (`map`, `log_format`,
 * `limit_conn`, `hash`...) register the http module's own spec again for the stream contexts, so
 * the parser, its error messages and the value's type are one and the same, as nginx's stream
 * modules are written after the http ones.
 */
import type { AnyDirectiveSpec, ConfModule, Context } from '../conf/registry.js';

/** The spec `name` of `module`, allowed in `contexts` instead, with overrides (`summary`, `default`...). */
export function reuseDirective(module: ConfModule, name: string, contexts: readonly Context[], overrides: Partial<Record<string, unknown>> = {}): AnyDirectiveSpec {
  const spec = module.directives.find((candidate) => candidate.name === name);
  if (spec === undefined) throw new Error(`module ${module.name} has no directive "${name}"`);
  return { ...spec, contexts, ...overrides } as AnyDirectiveSpec;
}

/** Contexts of a stream directive allowed at the `stream` and `server` levels. */
export const STREAM_SERVER_CONTEXTS: readonly Context[] = ['stream', 'stream_server'];
