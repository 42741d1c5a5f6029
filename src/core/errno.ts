/**
 * System errors in nginx's words: `(111: Connection refused)`, the errno and the C library's
 * strerror() text that nginx's ngx_strerror() prints. The numbers are the platform's
 * (`os.constants.errno`); the text is libuv's (`util.getSystemErrorMap()`), capitalised, except
 * where glibc words it differently, which is what an nginx log on Linux shows.
 */
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** glibc's strerror() where libuv's message differs by more than the capital. */
const GLIBC_TEXT: Readonly<Record<string, string>> = {
  EHOSTUNREACH: 'No route to host',
  EISDIR: 'Is a directory',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ELOOP: 'Too many levels of symbolic links',
  ENOTCONN: 'Transport endpoint is not connected',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ETIMEDOUT: 'Connection timed out',
};

/** The errno of a Node error code on this platform (`ECONNREFUSED` is 111 on Linux), or undefined. */
export function errnoNumber(code: string): number | undefined {
  return (constants.errno as Readonly<Record<string, number>>)[code];
}

/** strerror()'s text for a Node error code (`Connection refused`), or undefined for a code that is no errno. */
export function errnoMessage(code: string): string | undefined {
  const glibc = GLIBC_TEXT[code];
  if (glibc !== undefined) return glibc;
  const errno = errnoNumber(code);
  const libuv = errno === undefined ? undefined : getSystemErrorMap().get(-errno)?.[1];
  return libuv === undefined ? undefined : libuv.charAt(0).toUpperCase() + libuv.slice(1);
}

/**
 * An error's `errno: text` as nginx prints it inside parentheses (`111: Connection refused`);
 * an error without a known code gives its own message.
 */
export function errnoText(err: unknown): string {
  const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
  const errno = errnoNumber(code);
  const message = errnoMessage(code);
  if (errno !== undefined && message !== undefined) return `${errno}: ${message}`;
  return err instanceof Error ? err.message : String(err);
}
