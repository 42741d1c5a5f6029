/**
 * `ngx_http_upstream_sticky_module` in an http block: the table of upstream/balancers/sticky.ts,
 * and the checks that need the whole http block: every variable it reads is known, and a learn
 * zone serves one group only, as ngx_shared_memory_add() and ngx_http_upstream_sticky_learn() see.
 */
import { ConfigError } from '../core/errors.js';
import type { ConfModule } from '../conf/registry.js';
import { stickyTemplates, upstreamStickyModule, type StickySetting } from '../upstream/balancers/sticky.js';
import { checkVariables } from './variables.js';

/** The `sticky` directive, and its checks: `unknown "x" variable`, `sticky zone "z" is already used in upstream "u"`. */
export const httpUpstreamStickyModule: ConfModule = {
  ...upstreamStickyModule,
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const groups = http.blocks.filter((block) => block.name === 'upstream' && block.isSet('sticky'));
    const zones = new Map<string, string>();
    for (const group of groups) {
      const setting = group.get('sticky') as StickySetting;
      if (setting.kind !== 'learn') continue;
      const earlier = zones.get(setting.zone);
      if (earlier !== undefined) throw new ConfigError(`sticky zone "${setting.zone}" is already used in upstream "${earlier}"`, group);
      zones.set(setting.zone, group.args[0] ?? '');
    }
    const templates = groups.flatMap((group) => stickyTemplates(group.get('sticky') as StickySetting));
    if (templates.length > 0) checkVariables(http, templates);
  },
};
