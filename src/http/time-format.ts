/**
 * The time formats of `$time_local` (`21/Nov/2026:05:11:57 +0000`, the Common Log Format) and
 * `$time_iso8601` (`2026-11-21T05:11:57+00:00`), in local time, computed at most once a second as
 * nginx's cached time strings are.
 */

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function offset(date: Date, separator: string): string {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${pad(Math.floor(abs / 60))}${separator}${pad(abs % 60)}`;
}

let cachedSecond = -1;
let cachedLocal = '';
let cachedIso = '';

function refresh(ms: number): void {
  const second = Math.floor(ms / 1000);
  if (second === cachedSecond) return;
  cachedSecond = second;
  const d = new Date(second * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  cachedLocal = `${pad(d.getDate())}/${MONTHS[d.getMonth()] ?? ''}/${d.getFullYear()}:${time} ${offset(d, '')}`;
  cachedIso = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${time}${offset(d, ':')}`;
}

/** `$time_local` for a time in ms since the epoch. */
export function formatTimeLocal(ms: number): string {
  refresh(ms);
  return cachedLocal;
}

/** `$time_iso8601` for a time in ms since the epoch. */
export function formatIso8601(ms: number): string {
  refresh(ms);
  return cachedIso;
}
