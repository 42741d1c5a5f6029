/**
 * nginx's `ngx_http_upstream_zone_module`: `zone name [size]` puts a group's run-time state in
 * shared memory, so that every worker counts the same failures. hitless's workers share no
 * memory: with `zone`, a worker tells the master each failure that counts against a peer and the
 * master hands the peer's failure state to every worker (process/upstream-zones.ts), as
 * process/zones.ts does for limit_req. Without `zone`, each worker counts alone, as nginx's do.
 */
import { ConfigError } from '../core/errors.js';
import { parseSize } from '../core/parse.js';
import { defineDirective, type ConfBlockView, type ConfModule } from '../conf/registry.js';

/** `zone name [size]`; size 0 when not given (another group must declare it). */
export interface UpstreamZone {
  readonly name: string;
  readonly size: number;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    zone: UpstreamZone | undefined;
  }
}

/** nginx refuses a zone smaller than 8 pages (`8 * ngx_pagesize`). */
const MIN_ZONE_SIZE = 8 * 4096;

/** Checks the zones of every group together, as ngx_shared_memory_add() and ngx_init_cycle() do. */
function checkZones(http: ConfBlockView): void {
  const sizes = new Map<string, UpstreamZone>();
  const zones = http.blocks.filter((block) => block.name === 'upstream' && block.isSet('zone')).map((block) => block.get('zone') as UpstreamZone);
  const otherUses = new Set([...http.get('limit_req_zone'), ...http.get('limit_conn_zone')].map((zone) => zone.name));
  for (const zone of zones) {
    if (otherUses.has(zone.name)) throw new ConfigError(`the shared memory zone "${zone.name}" is already declared for a different use`, zone);
    const declared = sizes.get(zone.name);
    if (zone.size === 0) continue;
    if (declared !== undefined && declared.size !== zone.size) {
      throw new ConfigError(`the size ${zone.size} of shared memory zone "${zone.name}" conflicts with already declared size ${declared.size}`, zone);
    }
    sizes.set(zone.name, zone);
  }
  for (const zone of zones) {
    // ngx_init_cycle(): reported without a location, once the whole configuration is read.
    if (!sizes.has(zone.name)) throw new ConfigError(`zero size shared memory zone "${zone.name}"`, undefined);
  }
}

/** The `zone` directive of `upstream` blocks. */
export const upstreamZoneModule: ConfModule = {
  name: 'ngx_http_upstream_zone_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'zone',
      contexts: ['upstream'],
      args: [1, 2],
      inherit: false,
      syntax: 'name [size];',
      summary: 'Shares the group\'s failure counts (max_fails within fail_timeout) among all workers, through the master, and, for least_conn and random two, every worker\'s active connections (heard one IPC round trip late); groups may share one zone.',
      default: () => undefined,
      defaultText: '—',
      parse: ([name = '', sizeText], ctx) => {
        let size = 0;
        if (sizeText !== undefined) {
          size = parseSize(sizeText) ?? ctx.fail(`invalid zone size "${sizeText}"`);
          if (size < MIN_ZONE_SIZE) ctx.fail(`zone "${name}" is too small`);
        }
        return { name, size, file: ctx.location.file, line: ctx.location.line };
      },
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http !== undefined) checkZones(http);
  },
};
