/**
 * `ngx_http_upstream_hash_module` in an http block: the table of upstream/balancers/hash.ts, and
 * the check that each key names known variables, which needs http's variable table.
 */
import type { ConfModule } from '../conf/registry.js';
import { upstreamHashModule, type HashSetting } from '../upstream/balancers/hash.js';
import { checkVariables } from './variables.js';

/** The `hash` directive, and its check: a key that names an unknown variable fails (`unknown "x" variable`), as nginx does once the configuration is read. */
export const httpUpstreamHashModule: ConfModule = {
  ...upstreamHashModule,
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const keys = http.blocks.filter((block) => block.name === 'upstream' && block.isSet('hash')).map((block) => (block.get('hash') as HashSetting).key);
    if (keys.length > 0) checkVariables(http, keys);
  },
};
