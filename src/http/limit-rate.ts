/**
 * `limit_rate` and `limit_rate_after` (ngx_http_core_module) and what sets the rate per request:
 * `set $limit_rate`, an upstream's `X-Accel-Limit-Rate`, and `proxy_buffering off` (which turns it
 * off, ngx_http_upstream_send_response()). The pacing is nginx's write filter's
 * (ngx_http_write_filter()): the first second's worth goes at once, then bytes leave no faster
 * than the rate allows over the time since the request began, and each write is followed by the
 * pause that its bytes cost. nginx counts the bytes the connection sent, the head included; hitless
 * counts the response body, which the filters see.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { defineDirective, type AnyDirectiveSpec, type ConfBlockView, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { parseSize } from '../core/parse.js';
import { compileTemplate, isConstantTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { HttpRequest } from './request.js';
import { checkVariables } from './variables.js';

/** A size directive that may hold variables (ngx_http_set_complex_value_size_slot()). */
export type SizeValue = { readonly size: number } | { readonly value: Template };

declare module '../conf/registry.js' {
  interface DirectiveValues {
    /** Undefined when not given on any level (nginx's NULL: no limit). */
    limit_rate: SizeValue | undefined;
    limit_rate_after: SizeValue | undefined;
  }
}

/** A size that may hold variables, as ngx_http_set_complex_value_size_slot() reads it. */
export function sizeValue([text = '']: readonly string[], ctx: DirectiveContext): SizeValue {
  const value = parseValue(text, ctx);
  if (!isConstantTemplate(value)) return { value };
  return { size: parseSize(text) ?? ctx.fail('invalid value') };
}

/** The directives, for ngx_http_core_module's table. */
export const LIMIT_RATE_DIRECTIVES: readonly AnyDirectiveSpec[] = [
  defineDirective({
    kind: 'value',
    name: 'limit_rate',
    contexts: ['http', 'server', 'location', 'location_if'],
    args: [1],
    syntax: 'rate;',
    summary: 'Paces a response to the client at rate bytes per second (0: no limit); may hold variables, read when the response starts; set $limit_rate and an upstream\'s X-Accel-Limit-Rate take precedence, proxy_buffering off turns it off. hitless counts the body\'s bytes, nginx the connection\'s (the head too).',
    default: () => undefined,
    defaultText: 'limit_rate 0;',
    parse: sizeValue,
  }),
  defineDirective({
    kind: 'value',
    name: 'limit_rate_after',
    contexts: ['http', 'server', 'location', 'location_if'],
    args: [1],
    syntax: 'size;',
    summary: 'The bytes of a response sent before limit_rate paces the rest; may hold variables.',
    default: () => undefined,
    defaultText: 'limit_rate_after 0;',
    parse: sizeValue,
  }),
];

/** `unknown "x" variable` at -t for the variables of both directives. */
export function checkLimitRateVariables(http: ConfBlockView): void {
  const templates: Template[] = [];
  for (const block of blocksOf(http)) {
    for (const name of ['limit_rate', 'limit_rate_after'] as const) {
      const setting = block.isSet(name) ? block.get(name) : undefined;
      if (setting !== undefined && 'value' in setting) templates.push(setting.value);
    }
  }
  checkVariables(http, templates);
}

/** A level's compiled pair, as ngx_http_complex_value_size() evaluates them; 0 where not given. */
export interface LimitRate {
  rate(request: HttpRequest): number;
  after(request: HttpRequest): number;
}

type RequestError = (request: HttpRequest, message: string) => void;

function compileSize(setting: SizeValue | undefined, table: VariableTable<HttpRequest>, error: RequestError): LimitRate['rate'] {
  if (setting === undefined) return () => 0;
  if ('size' in setting) {
    const size = setting.size;
    return () => size;
  }
  const text = compileTemplate(setting.value, table);
  return (request) => {
    const value = text(request);
    const size = parseSize(value);
    if (size !== undefined) return size;
    error(request, `invalid size "${value}"`);
    return 0;
  };
}

/** Compiles the level's limit_rate and limit_rate_after; undefined when the level paces nothing (no limit_rate, or 0). */
export function compileLimitRate(block: ConfBlockView, table: VariableTable<HttpRequest>, error: RequestError): LimitRate | undefined {
  const rate = block.get('limit_rate');
  if (rate === undefined || ('size' in rate && rate.size === 0)) return undefined;
  return { rate: compileSize(block.get('limit_rate'), table, error), after: compileSize(block.get('limit_rate_after'), table, error) };
}

/**
 * The pacer for a response about to start, or undefined when it is not paced: the rate set for
 * the request (`set $limit_rate`, X-Accel-Limit-Rate, proxy_buffering off) or else the level's,
 * which is then the request's (ngx_http_write_filter(): r->limit_rate_set).
 */
export function pacerFor(request: HttpRequest, limits: LimitRate | undefined): RatePacer | undefined {
  request.limitRate ??= limits?.rate(request) ?? 0;
  if (request.limitRate === 0) return undefined;
  return new RatePacer(request.limitRate, limits?.after(request) ?? 0, request.startMs);
}

/** `set $limit_rate value` (ngx_http_variable_set_limit_rate()): a size, else nginx's [error] and no change. */
export function setLimitRate(request: HttpRequest, value: string, error: (message: string) => void): void {
  const size = parseSize(value);
  if (size === undefined) {
    error(`invalid $limit_rate "${value}"`);
    return;
  }
  request.limitRate = size;
}

/**
 * The body, paced as ngx_http_write_filter() paces it. Before a write: the bytes allowed are the
 * rate times the whole seconds since the request began plus one, less what was sent past `after`;
 * none allowed waits until one is. After a write of n bytes past `after`, the next waits n / rate.
 */
export class RatePacer extends Transform {
  readonly #rate: number;
  readonly #after: number;
  readonly #startSec: number;
  #sent = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(rate: number, after: number, startMs: number) {
    super();
    this.#rate = rate;
    this.#after = after;
    this.#startSec = Math.floor(startMs / 1000);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#send(chunk, callback);
  }

  #send(chunk: Buffer, callback: TransformCallback): void {
    if (this.destroyed) return;
    const limit = this.#rate * (Math.floor(Date.now() / 1000) - this.#startSec + 1) - (this.#sent - this.#after);
    if (limit <= 0) {
      this.#wait(Math.floor((-limit * 1000) / this.#rate) + 1, () => this.#send(chunk, callback));
      return;
    }
    const part = chunk.length <= limit ? chunk : chunk.subarray(0, limit);
    const before = Math.max(0, this.#sent - this.#after);
    this.#sent += part.length;
    this.push(part);
    const delay = Math.floor(((Math.max(0, this.#sent - this.#after) - before) * 1000) / this.#rate);
    const rest = part.length === chunk.length ? undefined : chunk.subarray(part.length);
    const next = rest === undefined ? () => callback() : () => this.#send(rest, callback);
    if (delay > 0) this.#wait(delay, next);
    else next();
  }

  #wait(ms: number, then: () => void): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      then();
    }, ms);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    callback(err);
  }
}
