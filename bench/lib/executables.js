// Finds the tools a benchmark drives. Debian installs nginx and haproxy in /usr/sbin, which is not
// on an ordinary user's PATH, so the sbin folders are searched too.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * The absolute path of an executable named `name`, from PATH then the sbin folders; undefined if
 * there is none.
 * @param {string} name
 * @returns {string | undefined}
 */
export function findExecutable(name) {
  const folders = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN];
  for (const folder of folders) {
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder; try the next one.
    }
  }
  return undefined;
}
