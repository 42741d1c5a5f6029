/**
 * nginx's `ngx_http_mirror_module`: `mirror uri | off` and `mirror_request_body`. The directives
 * and their compiled form; the subrequests themselves run in mirror.ts, started by the handler's
 * precontent phase.
 */
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { ConfBlockView } from '../conf/registry.js';
import { flagDirective } from '../conf/values.js';
import { toByteString } from '../core/byte-string.js';

/** What a level mirrors: the URIs of its subrequests, in the order given (none: it mirrors nothing). */
export interface CompiledMirror {
  readonly uris: readonly string[];
  /** `log_subrequest`: a subrequest answered at this level is written to its access log. */
  readonly logSubrequest: boolean;
  /** `mirror_request_body`: the client's body is read before the content phase and sent to each mirror too. */
  readonly requestBody: boolean;
  /** `client_max_body_size` of the level, which the body read for the mirrors obeys (0: no limit). */
  readonly maxBodySize: number;
  /** `post_action`: the URI or `@name` run, its response discarded, once the request's response is done. */
  readonly postAction: string | undefined;
}

/** A level's `mirror` lines: the URIs, or `off` (nginx's NULL array), which no other line may join. */
export type MirrorSetting = readonly string[] | 'off';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    mirror: MirrorSetting;
    mirror_request_body: boolean;
    log_subrequest: boolean;
    post_action: string | undefined;
  }
}

/** ngx_http_mirror(): `off` alone, or any number of URIs; mixing them is `is duplicate`. */
function parseMirror(args: readonly string[], ctx: DirectiveContext, previous: MirrorSetting | undefined): MirrorSetting {
  const value = args[0] ?? '';
  if (value === 'off') {
    if (previous !== undefined) ctx.fail('"mirror" directive is duplicate');
    return 'off';
  }
  if (previous === 'off') ctx.fail('"mirror" directive is duplicate');
  return [...(previous ?? []), value];
}

/** The mirror of a level (a level without `mirror` lines has its enclosing level's: ngx_conf_merge_ptr_value()). */
export function compileMirror(block: ConfBlockView): CompiledMirror {
  const setting = block.get('mirror');
  return {
    uris: setting === 'off' ? [] : setting.map(toByteString),
    requestBody: block.get('mirror_request_body'),
    maxBodySize: block.get('client_max_body_size'),
    logSubrequest: block.get('log_subrequest'),
    postAction: block.get('post_action'),
  };
}

/** The mirror module's directives. */
export const httpMirrorModule: ConfModule = {
  name: 'ngx_http_mirror_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'mirror',
      contexts: ['http', 'server', 'location'],
      args: [1],
      repeatable: true,
      syntax: 'uri | off;',
      summary:
        'Sends a copy of each request (method, headers, args, and the body with mirror_request_body on) as a background subrequest to the URI, whose response is discarded; several allowed; a level without mirror lines inherits its enclosing level\'s. Mirror subrequests are not written to the access log.',
      default: () => [],
      defaultText: 'mirror off;',
      parse: parseMirror,
    }),
    flagDirective(
      'mirror_request_body',
      'Reads the whole client request body before the content phase and sends it to the mirrors too; off mirrors without the body (hitless then sends the mirror no Content-Length, where nginx passes the client\'s).',
      true,
    ),
    // ngx_http_core_module's; here because it runs as a mirror subrequest does, into a sink.
    defineDirective({
      kind: 'value',
      name: 'post_action',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1],
      syntax: 'uri | @name;',
      summary:
        'Once the response to a request is done, runs the request again at the URI (without its args) or at the named location (with them), and discards that response. The access log line waits for it and is the post action\'s, as in nginx: its location\'s access_log, its $uri and $status, the bytes the client was sent.',
      default: () => undefined,
      defaultText: '—',
      // ngx_conf_set_str_slot: no `off`; a value not starting with / names a location, as written.
      parse: ([value = '']) => toByteString(value),
    }),
    // ngx_http_core_module's; here because hitless's only subrequests are the mirror's.
    flagDirective('log_subrequest', 'Writes subrequests (in hitless: mirror subrequests) to the access log of the location that answers them.', false),
  ],
};
