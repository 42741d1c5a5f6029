/** hitless's version, for `-v`, the Server header and `$nginx_version`'s neighbours. */
import { readFileSync } from 'node:fs';

/** hitless's version, from its package.json. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** `$nginx_version`: the nginx whose configuration language and behaviour hitless follows (Debian's 1.22). */
export const NGINX_VERSION = '1.22.1';
