// Reading the command-line options the benchmarks share, with one wording for a bad value.
import { parseArgs } from 'node:util';

/**
 * Whole seconds, as "10" or "10s".
 * @param {string} text
 * @param {string} flag the option's name, for the message
 * @param {number} min the smallest value allowed
 * @returns {number}
 */
export function wholeSeconds(text, flag, min = 1) {
  const match = /^(\d+)s?$/.exec(text);
  if (!match || Number(match[1]) < min) throw new Error(`Invalid ${flag} "${text}": expected whole seconds such as "10s"`);
  return Number(match[1]);
}

/**
 * A positive integer.
 * @param {string} text
 * @param {string} flag the option's name, for the message
 * @returns {number}
 */
export function positiveInteger(text, flag) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Invalid ${flag} "${text}": expected a positive integer`);
  return n;
}

/** The options every server benchmark takes, as node:util parseArgs declares them. */
const COMMON_OPTIONS = {
  duration: { type: 'string', default: '10s' },
  repeat: { type: 'string', default: '3' },
  warmup: { type: 'string', default: '2s' },
  connections: { type: 'string', default: '50' },
  only: { type: 'string' },
  keep: { type: 'boolean', default: false },
  'no-docs': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

/**
 * The usage lines of the common options, after a benchmark's own.
 * @param {string} servers what --only lists by default, e.g. "hitless,nginx"
 */
export function commonUsage(servers) {
  return `  --duration <time>     length of each measured run, e.g. 10s (default 10s)
  --repeat <n>          measured runs per server; the table shows the median (default 3)
  --warmup <time>       unmeasured run first, e.g. 2s, 0 for none (default 2s)
  --connections <n>     wrk's -c (default 50)
  --only <names>        comma-separated servers (default: ${servers})
  --no-docs             print the results without writing docs/benchmarks.md
  --keep                keep the generated configurations, files and logs
  -h, --help            this text`;
}

/**
 * Reads the common options and a benchmark's own (`extra`, in parseArgs's form) from argv.
 * @param {Record<string, { type: 'string' | 'boolean', default?: string | boolean, short?: string }>} [extra]
 * @returns {{ help: boolean, writeDocs: boolean, args: string[], seconds: number, warmup: number, repeat: number, connections: number, only: string[] | undefined, keep: boolean, values: Record<string, string | boolean | undefined> }}
 *   `values` holds the raw values, the extra options' among them
 */
export function parseCommonOptions(extra = {}) {
  const { values } = parseArgs({ options: /** @type {import('node:util').ParseArgsConfig['options']} */ ({ ...COMMON_OPTIONS, ...extra }) });
  return {
    help: Boolean(values.help),
    writeDocs: !values['no-docs'],
    args: process.argv.slice(2),
    seconds: wholeSeconds(String(values.duration), '--duration'),
    warmup: wholeSeconds(String(values.warmup), '--warmup', 0),
    repeat: positiveInteger(String(values.repeat), '--repeat'),
    connections: positiveInteger(String(values.connections), '--connections'),
    only: typeof values.only === 'string' ? values.only.split(',').map((name) => name.trim()).filter(Boolean) : undefined,
    keep: Boolean(values.keep),
    values,
  };
}
