/**
 * hitless's own directives for the admin API and the certificate store. nginx has no equivalent
 * (NGINX Plus has `api` and a key-value store); they live in the main context, since the master
 * serves the API and owns the store.
 */
import { isIP } from 'node:net';
import { parseNumber } from '../core/parse.js';
import { prefixed } from '../conf/core-module.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';

/** Where the admin API listens: a unix socket (mode 0600), or a loopback TCP port that needs a bearer token. */
export type AdminListen =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly tokenFile: string };

declare module '../conf/registry.js' {
  interface DirectiveValues {
    admin_listen: readonly AdminListen[];
    certificate_store: string;
  }
}

/** The store's directory unless `certificate_store` says otherwise, relative to the prefix. */
export const DEFAULT_CERTIFICATE_STORE = 'store/certificates';

/** `admin_listen unix:path | address:port token_file=file;` */
function parseAdminListen(args: readonly string[], ctx: DirectiveContext, previous: readonly AdminListen[] | undefined): readonly AdminListen[] {
  const [address = '', ...params] = args;
  let tokenFile: string | undefined;
  for (const param of params) {
    if (param.startsWith('token_file=') && param.length > 'token_file='.length) tokenFile = prefixed(ctx, param.slice('token_file='.length));
    else ctx.fail(`invalid parameter "${param}"`);
  }
  let listen: AdminListen;
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    if (path === '') ctx.fail(`no path in the unix domain socket "${address}"`);
    if (tokenFile !== undefined) ctx.fail('"token_file" is for a TCP admin_listen; a unix socket is protected by its mode');
    listen = { kind: 'unix', path: prefixed(ctx, path) };
  } else {
    const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
    const host = match?.[1] ?? match?.[2] ?? '';
    if (match === null || isIP(host) === 0) ctx.fail(`invalid admin address "${address}": expected unix:path, 127.0.0.1:port or [::1]:port`);
    if (!isLoopback(host)) ctx.fail(`admin_listen on "${address}" is refused: the admin API listens on loopback addresses only`);
    const port = parseNumber(match[3] ?? '');
    if (port === undefined || port < 1 || port > 65535) ctx.fail(`invalid port in "${address}"`);
    if (tokenFile === undefined) ctx.fail(`admin_listen on "${address}" needs token_file=: a TCP admin API takes a bearer token`);
    listen = { kind: 'tcp', host, port, tokenFile };
  }
  return [...(previous ?? []), listen];
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The admin API and certificate store directives. */
export const adminModule: ConfModule = {
  name: 'hitless_admin_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'admin_listen',
      contexts: ['main'],
      args: [1, 2],
      repeatable: true,
      syntax: 'unix:path | address:port token_file=file;',
      summary: 'Where the admin API (certificates, status) listens: a unix socket created with mode 0600, or a loopback TCP port that takes `Authorization: Bearer` with the token in the file. Off unless set.',
      defaultText: '—',
      default: () => [],
      parse: parseAdminListen,
    }),
    defineDirective({
      kind: 'value',
      name: 'certificate_store',
      contexts: ['main'],
      args: [1],
      syntax: 'directory;',
      summary: 'Where the master keeps the certificates put through the admin API, one 0600 file per name in a 0700 directory; relative to the prefix.',
      defaultText: `certificate_store ${DEFAULT_CERTIFICATE_STORE};`,
      default: (ctx) => prefixed(ctx, DEFAULT_CERTIFICATE_STORE),
      parse: ([dir = ''], ctx) => prefixed(ctx, dir),
    }),
  ],
};
