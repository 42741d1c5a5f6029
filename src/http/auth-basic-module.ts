/**
 * nginx's `ngx_http_auth_basic_module`: `auth_basic` (the realm, with variables, or `off`) and
 * `auth_basic_user_file` (the htpasswd file, with variables, relative to the configuration's
 * directory), and the request's Basic credentials as `ngx_http_auth_basic_user()` reads them.
 */
import { defineDirective, type ConfModule } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import type { Template } from '../core/variables.js';
import type { HttpRequest } from './request.js';

/** `auth_basic_user_file`: the path, and the directory a relative one is taken from. */
export interface UserFileSetting {
  readonly path: Template;
  readonly confPrefix: string;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    auth_basic: Template | undefined;
    auth_basic_user_file: UserFileSetting | undefined;
  }
}

/** The user and password of a request's `Authorization: Basic`, as latin1 strings of its bytes. */
export interface BasicCredentials {
  readonly user: string;
  readonly password: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * `ngx_http_auth_basic_user()`: `Basic` (any case), spaces, then strict base64 of `user:password`;
 * undefined when absent or malformed, or when the user is empty (nginx declines both).
 */
export function basicCredentials(request: HttpRequest): BasicCredentials | undefined {
  const header = request.header('authorization');
  if (header === undefined || header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const encoded = header.slice(6).replace(/^ +/, '');
  // ngx_decode_base64(): the standard alphabet, no stray characters, no impossible length.
  if (encoded === '' || !BASE64.test(encoded) || encoded.replace(/=+$/, '').length % 4 === 1) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('latin1');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const CONTEXTS = ['http', 'server', 'location', 'limit_except'] as const;

/** The auth_basic module's directives. */
export const httpAuthBasicModule: ConfModule = {
  name: 'ngx_http_auth_basic_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'auth_basic',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'string | off;',
      summary: 'Asks for a user and password checked against auth_basic_user_file (401 with WWW-Authenticate: Basic realm="string"); the realm may hold variables; off turns it off.',
      default: () => undefined,
      defaultText: 'auth_basic off;',
      parse: ([text = ''], ctx) => parseValue(text, ctx),
    }),
    defineDirective({
      kind: 'value',
      name: 'auth_basic_user_file',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'file;',
      summary: 'The htpasswd file (may hold variables; re-read when its inode, size or mtime changes): crypt(3) DES, $1$, $apr1$, $5$, $6$, $2a$/$2b$/$2y$ bcrypt, {PLAIN}, {SHA}, {SSHA}.',
      default: () => undefined,
      defaultText: '—',
      parse: ([text = ''], ctx) => ({ path: parseValue(text, ctx), confPrefix: ctx.confPrefix }),
    }),
  ],
};
