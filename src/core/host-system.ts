/**
 * What the host system offers beyond Node: its user and group databases, as `getpwnam()` and
 * `getgrnam()` read them for nginx's `user` directive, and the commands (util-linux's `prlimit`
 * and `taskset`) that apply the process settings Node has no call for. Node has no binding for
 * the databases, so this asks `getent`, which goes through the C library's NSS like nginx (LDAP and
 * other sources included), and reads /etc/passwd and /etc/group only where `getent` is missing.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The absolute path of an executable named `name` on `PATH`, or undefined, as a shell would find it. */
export function findCommand(name: string, path: string = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here: the next directory.
    }
  }
  return undefined;
}

/** One entry of the user database. */
export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  /** The primary group. */
  readonly gid: number;
}

/** `getpwnam(name)`: the user, or undefined when there is none of that name. */
export function lookupUser(name: string): SystemUser | undefined {
  const fields = lookupEntry('passwd', name);
  if (fields === undefined) return undefined;
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  return Number.isSafeInteger(uid) && Number.isSafeInteger(gid) ? { name, uid, gid } : undefined;
}

/** `getgrnam(name)`: the group's id, or undefined when there is none of that name. */
export function lookupGroup(name: string): number | undefined {
  const fields = lookupEntry('group', name);
  const gid = Number(fields?.[2]);
  return fields !== undefined && Number.isSafeInteger(gid) ? gid : undefined;
}

/** The colon-separated fields of the named entry of `passwd` or `group`. */
function lookupEntry(database: 'passwd' | 'group', name: string): string[] | undefined {
  // A name getent would read as a number (getent passwd 0) or an option is no name getpwnam() finds.
  if (name === '' || name.startsWith('-') || /^[0-9]+$/.test(name) || name.includes(':')) return undefined;
  let text: string;
  try {
    text = execFileSync('getent', [database, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch (err) {
    // getent exits 2 for a name it does not know; any other failure means there is no getent.
    if ((err as { status?: number }).status === 2) return undefined;
    text = readFileSync(`/etc/${database}`, 'utf8');
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name) return fields;
  }
  return undefined;
}
