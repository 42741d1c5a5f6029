/**
 * nginx's command line, parsed as `ngx_get_options()` parses it: single-letter flags that may be
 * grouped (`-tq`), values attached or separate (`-cfile`, `-c file`), and nginx's error texts.
 */
import { UsageError } from '../core/errors.js';

/** The signals `-s` accepts, as nginx names them. */
export type SignalName = 'stop' | 'quit' | 'reopen' | 'reload';

/** What the command line asks for. */
export interface CommandLine {
  readonly help: boolean;
  readonly version: boolean;
  readonly configureOptions: boolean;
  readonly test: boolean;
  readonly dump: boolean;
  readonly quiet: boolean;
  readonly signal: SignalName | undefined;
  readonly prefix: string | undefined;
  readonly errorLog: string | undefined;
  readonly configFile: string | undefined;
  readonly params: string | undefined;
}

const SIGNALS: readonly string[] = ['stop', 'quit', 'reopen', 'reload'];

/** Parses nginx's flags; throws a {@link UsageError} with nginx's message for anything else. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const line = {
    help: false,
    version: false,
    configureOptions: false,
    test: false,
    dump: false,
    quiet: false,
    signal: undefined as SignalName | undefined,
    prefix: undefined as string | undefined,
    errorLog: undefined as string | undefined,
    configFile: undefined as string | undefined,
    params: undefined as string | undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-')) throw new UsageError(`invalid option: "${arg}"`);
    let p = 1;
    while (p < arg.length) {
      const flag = arg[p++] as string;
      const takeValue = (what: string): string => {
        if (p < arg.length) {
          const value = arg.slice(p);
          p = arg.length;
          return value;
        }
        const next = argv[++i];
        if (next === undefined) throw new UsageError(`option "-${flag}" requires ${what}`);
        return next;
      };
      switch (flag) {
        case '?':
        case 'h':
          line.help = true;
          line.version = true;
          break;
        case 'v':
          line.version = true;
          break;
        case 'V':
          line.version = true;
          line.configureOptions = true;
          break;
        case 't':
          line.test = true;
          break;
        case 'T':
          line.test = true;
          line.dump = true;
          break;
        case 'q':
          line.quiet = true;
          break;
        case 'p':
          line.prefix = takeValue('directory name');
          break;
        case 'e':
          line.errorLog = takeValue('file name');
          break;
        case 'c':
          line.configFile = takeValue('file name');
          break;
        case 'g':
          line.params = takeValue('parameter');
          break;
        case 's': {
          const signal = takeValue('parameter');
          if (!SIGNALS.includes(signal)) throw new UsageError(`invalid option: "-s ${signal}"`);
          line.signal = signal as SignalName;
          break;
        }
        default:
          throw new UsageError(`invalid option: "${flag}"`);
      }
    }
  }
  return line;
}
