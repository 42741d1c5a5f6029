/**
 * The flags that say where a running hitless's admin API is, shared by `hitless certs` and
 * `hitless upstreams`: given directly, or found in the configuration as `hitless -s` finds the pid.
 */
import { AdminClient } from '../admin/admin-client.js';
import { resolveAdminEndpoint } from '../admin/admin-endpoint.js';
import { createRegistry } from '../modules.js';
import { DEFAULT_CONF_PATH, DEFAULT_PREFIX } from './version.js';

/** parseArgs options of the admin API's location. */
export const ADMIN_FLAGS = {
  conf: { type: 'string', short: 'c' },
  prefix: { type: 'string', short: 'p' },
  socket: { type: 'string' },
  url: { type: 'string' },
  'token-file': { type: 'string' },
} as const;

/** Their help text. */
export const ADMIN_FLAGS_HELP =
  'where the admin API is (default: the first admin_listen of the configuration):\n' +
  '  -c FILE                the configuration file, as for hitless -c\n' +
  '  -p DIR                 the prefix, as for hitless -p\n' +
  '  --socket PATH          the admin unix socket\n' +
  '  --url http://HOST:PORT a loopback TCP admin API, with --token-file\n' +
  '  --token-file FILE      the bearer token of a TCP admin API\n';

/** The values parseArgs gives for {@link ADMIN_FLAGS}. */
export interface AdminFlagValues {
  readonly conf?: string | undefined;
  readonly prefix?: string | undefined;
  readonly socket?: string | undefined;
  readonly url?: string | undefined;
  readonly 'token-file'?: string | undefined;
}

/** A client of the admin API the flags name; throws UsageError or HitlessError as resolveAdminEndpoint does. */
export function adminClientOf(values: AdminFlagValues): AdminClient {
  const where = { socket: values.socket, url: values.url, tokenFile: values['token-file'], conf: values.conf, prefix: values.prefix };
  return new AdminClient(resolveAdminEndpoint(where, { prefix: DEFAULT_PREFIX, conf: DEFAULT_CONF_PATH, registry: createRegistry() }));
}
