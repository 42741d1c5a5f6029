/** Host names resolved at configuration time, as nginx's ngx_parse_url() does with getaddrinfo(). */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';

/** Resolves a host name the way getaddrinfo() reads /etc/hosts; DNS is not consulted at load time. */
export function resolveHostSync(name: string, hostsFile = '/etc/hosts'): string[] {
  const found: string[] = [];
  let text = '';
  try {
    text = readFileSync(hostsFile, 'utf8');
  } catch {
    text = '';
  }
  for (const line of text.split('\n')) {
    const [ip, ...names] = (line.split('#')[0] ?? '').trim().split(/\s+/);
    if (ip === undefined || !names.some((n) => n.toLowerCase() === name.toLowerCase())) continue;
    if ((isIPv4(ip) || isIPv6(ip)) && !found.includes(ip)) found.push(ip);
  }
  if (found.length === 0 && name.toLowerCase() === 'localhost') found.push('127.0.0.1');
  return found;
}
