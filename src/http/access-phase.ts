/**
 * nginx's access phase (`ngx_http_core_access_phase()`, `ngx_http_core_post_access_phase()`): the
 * access module's `allow`/`deny` first, then `auth_basic` (nginx runs a phase's handlers in the
 * reverse of their registration), combined by `satisfy`. A location's `limit_except` block, for a
 * method it does not list, replaces the location's rules by its own
 * (`ngx_http_update_location_config()`).
 */
import { isAbsolute } from 'node:path';
import type { ConfBlockView } from '../conf/registry.js';
import { errnoText } from '../core/errno.js';
import type { ErrorLog } from '../core/log.js';
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import { checkAccess, compileAccessRules, type AccessRule } from './access-module.js';
import { basicCredentials } from './auth-basic-module.js';
import type { LimitExcept } from './core-directives.js';
import { passwordMatches } from './password-hash.js';
import type { HttpRequest } from './request.js';
import type { UserFiles } from './user-files.js';

/** `auth_basic` and `auth_basic_user_file` of a level, compiled. */
interface CompiledAuth {
  readonly realm: CompiledTemplate<HttpRequest>;
  readonly userFile: CompiledTemplate<HttpRequest>;
  readonly confPrefix: string;
  readonly files: UserFiles;
}

/** What the access phase of one level checks. */
export interface AccessPhase {
  readonly satisfy: 'all' | 'any';
  /** `auth_delay`, in ms. */
  readonly authDelayMs: number;
  readonly rules: readonly AccessRule[];
  readonly auth: CompiledAuth | undefined;
  /** `limit_except`: the methods it lets through, and the phase every other method goes through. */
  readonly limitExcept: { readonly methods: ReadonlySet<string>; readonly restricted: AccessPhase } | undefined;
}

/** The status the access phase ends the request with, and its headers (WWW-Authenticate). */
export interface AccessDenial {
  readonly status: number;
  readonly headers?: readonly string[];
}

/** Where the phase writes its error log lines. */
export interface AccessOutput {
  readonly log: ErrorLog;
  readonly connection: number;
  /** nginx's `, client: ..., server: ..., request: "..."` tail. */
  readonly context: () => string;
}

function compileOwn(block: ConfBlockView, table: VariableTable<HttpRequest>, files: UserFiles): Omit<AccessPhase, 'limitExcept'> {
  const realm = block.get('auth_basic');
  const userFile = block.get('auth_basic_user_file');
  // ngx_http_auth_basic_handler(): no realm or no file, nothing to check.
  const auth = realm === undefined || userFile === undefined || realm.source === 'off'
    ? undefined
    : { realm: compileTemplate(realm, table), userFile: compileTemplate(userFile.path, table), confPrefix: userFile.confPrefix, files };
  return { satisfy: block.get('satisfy'), authDelayMs: block.get('auth_delay'), rules: compileAccessRules(block), auth };
}

/** The access phase of a server or location; undefined when it checks nothing. */
export function compileAccessPhase(block: ConfBlockView, table: VariableTable<HttpRequest>, files: UserFiles): AccessPhase | undefined {
  const own = compileOwn(block, table, files);
  const limitBlock = block.name === 'location' ? block.blocks.find((child) => child.name === 'limit_except') : undefined;
  let limitExcept: AccessPhase['limitExcept'];
  if (limitBlock !== undefined) {
    const restricted = { ...compileOwn(limitBlock, table, files), limitExcept: undefined };
    limitExcept = { methods: (limitBlock.value as LimitExcept).methods, restricted };
  }
  if (own.rules.length === 0 && own.auth === undefined && limitExcept === undefined) return undefined;
  return { ...own, limitExcept };
}

type AuthResult = 'declined' | 'ok' | AccessDenial;

/**
 * Runs the phase for a request: undefined when it may go on to the content, else the denial.
 * Synchronous unless a password is to be checked.
 */
export function runAccessPhase(phase: AccessPhase, request: HttpRequest, out: AccessOutput): AccessDenial | undefined | Promise<AccessDenial | undefined> {
  const limit = phase.limitExcept;
  const level = limit !== undefined && !limit.methods.has(request.head.method) ? limit.restricted : phase;
  const verdict = checkAccess(level.rules, request.remoteAddress);
  let code: AccessDenial | undefined;
  if (verdict === 'deny') {
    if (level.satisfy === 'all') {
      out.log.error(`access forbidden by rule${out.context()}`, out.connection);
      return { status: 403 };
    }
    code = { status: 403 };
  } else if (verdict === 'allow' && level.satisfy === 'any') return undefined;
  if (level.auth === undefined) return finish(code, out);
  return authenticate(level.auth, request, out).then((result) => {
    if (result === 'ok') return undefined;
    if (result === 'declined') return finish(code, out);
    if (level.satisfy === 'all' || (result.status !== 401 && result.status !== 403)) return delayed(result, level.authDelayMs, out);
    // ngx_http_core_access_phase(): with satisfy any, a 401 is kept over a 403.
    if (code?.status !== 401) code = result;
    return delayed(finish(code, out), level.authDelayMs, out);
  });
}

/** `ngx_http_core_auth_delay()`: a 401 waits `auth_delay` first. */
async function delayed(denial: AccessDenial | undefined, delayMs: number, out: AccessOutput): Promise<AccessDenial | undefined> {
  if (denial?.status !== 401 || delayMs === 0) return denial;
  out.log.info(`delaying unauthorized request${out.context()}`, out.connection);
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  return denial;
}

/** `ngx_http_core_post_access_phase()`: the code satisfy any kept, if nothing let the request through. */
function finish(code: AccessDenial | undefined, out: AccessOutput): AccessDenial | undefined {
  if (code?.status === 403) out.log.error(`access forbidden by rule${out.context()}`, out.connection);
  return code;
}

/** `ngx_http_auth_basic_handler()`. */
async function authenticate(auth: CompiledAuth, request: HttpRequest, out: AccessOutput): Promise<AuthResult> {
  const realm = auth.realm(request);
  if (realm === 'off') return 'declined';
  const challenge: AccessDenial = { status: 401, headers: ['WWW-Authenticate', `Basic realm="${realm}"`] };
  const credentials = basicCredentials(request);
  if (credentials === undefined) {
    out.log.info(`no user/password was provided for basic authentication${out.context()}`, out.connection);
    return challenge;
  }
  const name = auth.userFile(request);
  // ccv.conf_prefix: a relative path is taken from the configuration's directory.
  const path = isAbsolute(name) ? name : `${auth.confPrefix}${name}`;
  const found = await auth.files.lookup(path, credentials.user);
  if (found.kind === 'error') {
    if (found.call === 'open' && found.error.code === 'ENOENT') {
      out.log.error(`open() "${path}" failed (${errnoText(found.error)})${out.context()}`, out.connection);
      return { status: 403 };
    }
    out.log.write('crit', `${found.call}() "${path}" failed (${errnoText(found.error)})${out.context()}`, out.connection);
    return { status: 500 };
  }
  if (found.kind === 'absent') {
    out.log.error(`user "${credentials.user}" was not found in "${path}"${out.context()}`, out.connection);
    return challenge;
  }
  if (await passwordMatches(credentials.password, found.hash)) return 'ok';
  out.log.error(`user "${credentials.user}": password mismatch${out.context()}`, out.connection);
  return challenge;
}
