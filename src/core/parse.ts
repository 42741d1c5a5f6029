/**
 * Value parsers shared by directive tables, with the exact rules of nginx's `ngx_atoi()`,
 * `ngx_parse_time()` and `ngx_parse_size()` (src/core/ngx_parse.c).
 */

/** A non-negative decimal integer, digits only (`ngx_atoi`); undefined when invalid. */
export function parseNumber(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { k: 1024, m: 1024 * 1024, g: 1024 * 1024 * 1024 };

/** A size such as `512`, `8k`, `1m` or `1g` (`ngx_parse_size`), in bytes; undefined when invalid. */
export function parseSize(text: string): number | undefined {
  const unit = SIZE_UNITS[text.slice(-1).toLowerCase()];
  const number = parseNumber(unit === undefined ? text : text.slice(0, -1));
  if (number === undefined) return undefined;
  const value = number * (unit ?? 1);
  return Number.isSafeInteger(value) ? value : undefined;
}

const TIME_STEPS: readonly { unit: string; ms: number }[] = [
  { unit: 'y', ms: 365 * 24 * 3600_000 },
  { unit: 'M', ms: 30 * 24 * 3600_000 },
  { unit: 'w', ms: 7 * 24 * 3600_000 },
  { unit: 'd', ms: 24 * 3600_000 },
  { unit: 'h', ms: 3600_000 },
  { unit: 'm', ms: 60_000 },
  { unit: 's', ms: 1000 },
  { unit: 'ms', ms: 1 },
];

/**
 * A time such as `30`, `75s`, `1h 30m` or `500ms` (`ngx_parse_time`), in milliseconds. Units must
 * appear largest first and at most once; a bare number means seconds. With `seconds: true`, as for
 * nginx's `ngx_conf_set_sec_slot` directives, `ms` is refused. Undefined when invalid.
 */
export function parseTime(text: string, options: { seconds?: boolean } = {}): number | undefined {
  const pattern = /([0-9]+)(ms|[yMwdhms])? */gy;
  let total = 0;
  let lastStep = -1;
  let pos = 0;
  let matched = false;
  while (pos < text.length) {
    pattern.lastIndex = pos;
    const match = pattern.exec(text);
    if (match === null) return undefined;
    pos = pattern.lastIndex;
    matched = true;
    const unit = match[2] ?? (pos === text.length ? 's' : undefined);
    if (unit === undefined) return undefined;
    const step = TIME_STEPS.findIndex((s) => s.unit === unit);
    if (step <= lastStep) return undefined;
    if (unit === 'ms' && options.seconds) return undefined;
    lastStep = step;
    total += Number(match[1]) * (TIME_STEPS[step] as { ms: number }).ms;
  }
  if (!matched || !Number.isSafeInteger(total)) return undefined;
  return options.seconds ? Math.floor(total / 1000) * 1000 : total;
}

/** nginx's error log levels, most severe first. */
export const LOG_LEVELS = ['emerg', 'alert', 'crit', 'error', 'warn', 'notice', 'info', 'debug'] as const;

/** One of nginx's error log levels. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** True when `level` names an nginx log level. */
export function isLogLevel(level: string): level is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(level);
}
