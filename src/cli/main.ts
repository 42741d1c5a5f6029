/**
 * The `hitless` command: nginx's flags with nginx's meaning and messages, and hitless's own
 * subcommands. A thin layer over the library: every action here is a library call.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../conf/loader.js';
import type { HitlessConfig } from '../conf/model.js';
import { createRegistry } from '../modules.js';
import { ConfigError, HitlessError, UsageError } from '../core/errors.js';
import { runMaster } from '../process/master.js';
import { PidFileError } from '../process/pid-file.js';
import { signalMaster } from '../process/signal-master.js';
import { parseCommandLine, type CommandLine } from './options.js';
import { DEFAULT_CONF_PATH, DEFAULT_PREFIX, usage, versionDetails, versionLine } from './version.js';

/** Where the command writes. */
export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Runs the command line and returns the exit status. */
export async function main(argv: readonly string[], io: CommandIO = process): Promise<number> {
  // A subcommand's modules (deploy's targets, probe's client) are loaded only when it runs: a master
  // started by this command would otherwise keep them in memory for its whole life.
  if (argv[0] === 'probe') return (await import('./probe-command.js')).probeCommand(argv.slice(1), io);
  if (argv[0] === 'deploy') return (await import('./deploy-command.js')).deployCommand(argv.slice(1), io);
  if (argv[0] === 'certs') return (await import('./certs-command.js')).certsCommand(argv.slice(1), io);
  if (argv[0] === 'upstreams') return (await import('./upstreams-command.js')).upstreamsCommand(argv.slice(1), io);

  let line: CommandLine;
  try {
    line = parseCommandLine(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`hitless: ${err.message}\n`);
    return 1;
  }

  const registry = createRegistry();
  if (line.version) {
    io.stderr.write(`${line.configureOptions ? versionDetails(registry) : versionLine()}\n`);
    if (line.help) io.stderr.write(usage());
    if (!line.test) return 0;
  }

  const prefix = withSlash(resolve(line.prefix ?? DEFAULT_PREFIX));
  const configFile = resolve(prefix, line.configFile ?? DEFAULT_CONF_PATH);
  const load = (): HitlessConfig =>
    loadConfig({ file: configFile, prefix, registry, ...(line.params === undefined ? {} : { params: line.params }) });

  if (line.test) return testConfig(load, configFile, line, io);

  if (line.signal !== undefined) {
    let config: HitlessConfig;
    try {
      config = load();
    } catch (err) {
      return reportConfigError(err, io);
    }
    try {
      signalMaster(config.main.get('pid') ?? '', line.signal);
      return 0;
    } catch (err) {
      if (!(err instanceof HitlessError)) throw err;
      // nginx logs a missing or bad pid file at [error] and a failed kill() at [alert].
      io.stderr.write(`hitless: [${err instanceof PidFileError ? err.level : 'error'}] ${err.message}\n`);
      return 1;
    }
  }

  return runMaster({
    configFile,
    prefix,
    ...(line.params === undefined ? {} : { params: line.params }),
    ...(line.errorLog === undefined ? {} : { errorLogPath: line.errorLog === 'stderr' ? 'stderr' : resolve(prefix, line.errorLog) }),
  });
}

/** `-t` and `-T`: nginx's two lines on success, the error and one line on failure. */
function testConfig(load: () => HitlessConfig, configFile: string, line: CommandLine, io: CommandIO): number {
  let config: HitlessConfig;
  try {
    config = load();
  } catch (err) {
    reportConfigError(err, io);
    io.stderr.write(`hitless: configuration file ${configFile} test failed\n`);
    return 1;
  }
  // nginx writes its [warn] lines while parsing, before the verdict, also with -q.
  for (const warning of config.warnings) io.stderr.write(`hitless: [warn] ${warning.message}\n`);
  if (!line.quiet) {
    io.stderr.write(`hitless: the configuration file ${configFile} syntax is ok\n`);
    io.stderr.write(`hitless: configuration file ${configFile} test is successful\n`);
  }
  if (line.dump) {
    for (const file of config.files) io.stdout.write(`# configuration file ${file.path}:\n${file.text}\n`);
  }
  return 0;
}

function reportConfigError(err: unknown, io: CommandIO): number {
  if (!(err instanceof ConfigError)) throw err;
  io.stderr.write(`hitless: [${err.level}] ${err.message}\n`);
  if (err.hint !== undefined) io.stderr.write(`hitless: [notice] ${err.hint}\n`);
  return 1;
}

function withSlash(path: string): string {
  return path.endsWith('/') ? path : `${path}/`;
}

/** Entry point of bin/hitless. */
export async function run(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2));
}
