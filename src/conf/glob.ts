/**
 * Pattern expansion for `include`, with the semantics of POSIX glob(3) that nginx's
 * `ngx_open_glob()` relies on: `*`, `?` and `[...]` in any path component, no braces, a leading
 * dot matched only explicitly, results sorted. Libraries such as picomatch add braces and extglobs,
 * which would read a path like `/etc/{a,b}.conf` differently from nginx.
 */
import { readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, sep } from 'node:path';

/** True when a path holds glob(3) wildcards, the test nginx applies before globbing. */
export function isGlobPattern(path: string): boolean {
  return /[*?[]/.test(path);
}

/** Expands an absolute pattern to the sorted list of matching files. No match is an empty list. */
export function expandGlob(pattern: string): string[] {
  if (!isAbsolute(pattern)) throw new TypeError(`expandGlob() needs an absolute pattern: "${pattern}"`);
  const parts = pattern.split(sep).filter((part) => part !== '');
  let paths: string[] = [sep];
  for (const [index, part] of parts.entries()) {
    const last = index === parts.length - 1;
    const next: string[] = [];
    for (const dir of paths) {
      if (!isGlobPattern(part)) {
        next.push(join(dir, part));
        continue;
      }
      const matcher = componentMatcher(part);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names.sort()) {
        if (matcher.test(name)) next.push(join(dir, name));
      }
    }
    paths = last ? next : next.filter(isDirectory);
  }
  return paths.filter(exists).sort();
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** True when an absolute path matches an absolute glob(3) pattern, component by component. */
export function matchGlob(pattern: string, path: string): boolean {
  const patternParts = pattern.split(sep).filter((part) => part !== '');
  const pathParts = path.split(sep).filter((part) => part !== '');
  if (patternParts.length !== pathParts.length) return false;
  return patternParts.every((part, i) => (isGlobPattern(part) ? componentMatcher(part).test(pathParts[i] as string) : part === pathParts[i]));
}

/** Translates one path component of a glob(3) pattern into an anchored regular expression. */
function componentMatcher(part: string): RegExp {
  let source = part.startsWith('.') ? '' : '(?!\\.)';
  for (let i = 0; i < part.length; i++) {
    const ch = part[i] as string;
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else if (ch === '[') {
      const close = part.indexOf(']', i + 2);
      if (close === -1) {
        source += '\\[';
        continue;
      }
      let set = part.slice(i + 1, close);
      const negate = set.startsWith('!');
      if (negate) set = set.slice(1);
      source += `[${negate ? '^' : ''}${set.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      i = close;
    } else if (ch === '\\' && i + 1 < part.length) {
      source += escapeRegExp(part[++i] as string);
    } else source += escapeRegExp(ch);
  }
  return new RegExp(`^${source}$`, 's');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}
