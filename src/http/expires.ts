/**
 * nginx's `expires` (ngx_http_headers_filter_module.c): the Expires and Cache-Control fields of a
 * response, from a time after the request (`expires 1h`), after the file's modification
 * (`expires modified 1d`), at a time of day (`expires @15h30m`), or fixed (`epoch`, `max`), with
 * the value optionally taken from a variable at request time (`expires $expires` after a `map`).
 */
import { parseTime } from '../core/parse.js';
import type { CompiledTemplate, Template } from '../core/variables.js';
import type { HttpRequest } from './request.js';

/** What `expires` says once parsed (nginx's NGX_HTTP_EXPIRES_* and its expires_time, in seconds). */
export interface ExpiresRule {
  readonly kind: 'off' | 'epoch' | 'max' | 'access' | 'modified' | 'daily';
  /** Seconds after the request or the modification; for `daily`, seconds after midnight (local time). */
  readonly seconds: number;
}

/** The `expires` directive's value: a rule, or a value with variables parsed per request. */
export type ExpiresSetting = { readonly rule: ExpiresRule } | { readonly modified: boolean; readonly value: Template };

/** `ngx_http_parse_expires()`: a rule, or nginx's reason for refusing the text. */
export function parseExpires(text: string, modified: boolean): ExpiresRule | { readonly error: string } {
  if (!modified) {
    if (text === 'epoch' || text === 'max' || text === 'off') return { kind: text, seconds: 0 };
  }
  let kind: ExpiresRule['kind'] = modified ? 'modified' : 'access';
  let rest = text;
  let minus = false;
  if (rest.startsWith('@')) {
    if (modified) return { error: 'daily time cannot be used with "modified" parameter' };
    kind = 'daily';
    rest = rest.slice(1);
  } else if (rest.startsWith('+')) rest = rest.slice(1);
  else if (rest.startsWith('-')) {
    minus = true;
    rest = rest.slice(1);
  }
  const ms = parseTime(rest, { seconds: true });
  if (ms === undefined) return { error: 'invalid value' };
  const seconds = ms / 1000;
  if (kind === 'daily' && seconds > 24 * 60 * 60) return { error: 'daily time value must be less than 24 hours' };
  return { kind, seconds: minus ? -seconds : seconds };
}

/** An `expires`, ready to run: the rule, or the value to parse per request. */
export type CompiledExpires = { readonly rule: ExpiresRule } | { readonly modified: boolean; readonly value: CompiledTemplate<HttpRequest> };

/** Compiles a level's `expires`; undefined for `off`, which does nothing. */
export function compileExpires(setting: ExpiresSetting, compile: (template: Template) => CompiledTemplate<HttpRequest>): CompiledExpires | undefined {
  if ('rule' in setting) return setting.rule.kind === 'off' ? undefined : setting;
  return { modified: setting.modified, value: compile(setting.value) };
}

/**
 * The header filter's part of `expires`, for the statuses add_header without always takes.
 * A value from a variable that does not parse, or says off, sets nothing (ngx_http_set_expires()).
 */
export function applyExpires(headers: string[], expires: CompiledExpires, request: HttpRequest, nowMs = Date.now()): void {
  if ('rule' in expires) {
    setExpires(headers, expires.rule, lastModifiedOf(headers), nowMs);
    return;
  }
  const rule = parseExpires(expires.value(request), expires.modified);
  if ('error' in rule || rule.kind === 'off') return;
  // nginx tests its configured expires_time (0 with a variable) for "no-cache", not the parsed one.
  setExpires(headers, rule, lastModifiedOf(headers), nowMs, false);
}

/** `ngx_next_time()`: the next moment (seconds since the epoch) that is `when` seconds after a local midnight. */
function nextTime(when: number, nowMs: number): number {
  const at = new Date(nowMs);
  at.setHours(Math.floor(when / 3600), Math.floor((when % 3600) / 60), when % 60, 0);
  if (at.getTime() / 1000 - Math.floor(nowMs / 1000) > 0) return at.getTime() / 1000;
  // mktime() normalizes the 32nd of a month as Date does.
  at.setDate(at.getDate() + 1);
  return at.getTime() / 1000;
}

/** RFC 9110 section 5.6.7's IMF-fixdate, as ngx_http_time() writes it. */
function httpTime(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}

/**
 * `ngx_http_set_expires()`: sets Expires and Cache-Control in `headers` (flat name/value pairs),
 * replacing an Expires and every Cache-Control already there (an upstream's) in place.
 * `lastModified` is the response's modification time in seconds, or -1 when it has none.
 */
export function setExpires(headers: string[], rule: ExpiresRule, lastModified: number, nowMs: number, negative = rule.seconds < 0): void {
  if (rule.kind === 'off') return;
  let expires: string;
  let cacheControl: string;
  const now = Math.floor(nowMs / 1000);
  if (rule.kind === 'epoch') {
    expires = 'Thu, 01 Jan 1970 00:00:01 GMT';
    cacheControl = 'no-cache';
  } else if (rule.kind === 'max') {
    expires = 'Thu, 31 Dec 2037 23:55:55 GMT';
    // 10 years.
    cacheControl = 'max-age=315360000';
  } else if (rule.seconds === 0 && rule.kind !== 'daily') {
    // The request's own time, the one its Date field says.
    expires = httpTime(now);
    cacheControl = 'max-age=0';
  } else {
    let at: number;
    let maxAge: number;
    if (rule.kind === 'daily') {
      at = nextTime(rule.seconds, nowMs);
      maxAge = at - now;
    } else if (rule.kind === 'access' || lastModified === -1) {
      at = now + rule.seconds;
      maxAge = rule.seconds;
    } else {
      at = lastModified + rule.seconds;
      maxAge = at - now;
    }
    expires = httpTime(at);
    cacheControl = negative || maxAge < 0 ? 'no-cache' : `max-age=${maxAge}`;
  }
  replaceField(headers, 'expires', 'Expires', expires);
  replaceField(headers, 'cache-control', 'Cache-Control', cacheControl);
}

/** The first field named `lower` gets `value` (under its own name), the others go; appended when there is none. */
function replaceField(headers: string[], lower: string, name: string, value: string): void {
  let found = false;
  for (let i = 0; i < headers.length; ) {
    if ((headers[i] as string).toLowerCase() !== lower) {
      i += 2;
      continue;
    }
    if (found) {
      headers.splice(i, 2);
      continue;
    }
    headers[i + 1] = value;
    found = true;
    i += 2;
  }
  if (!found) headers.push(name, value);
}

/** The response's Last-Modified as seconds since the epoch (nginx's last_modified_time), -1 when none or unreadable. */
export function lastModifiedOf(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() !== 'last-modified') continue;
    const ms = Date.parse(headers[i + 1] as string);
    return Number.isNaN(ms) ? -1 : Math.floor(ms / 1000);
  }
  return -1;
}
