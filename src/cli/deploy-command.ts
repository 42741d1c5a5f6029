/**
 * `hitless deploy ...` and `hitless deploy config ...`: the command-line face of the deploy
 * library. It reads flags and input files, builds a target and a plan, prints each step as it
 * runs (or one JSON object with --json), and returns the deploy's exit code (docs/deploy.md).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatSyscallError, HitlessError, UsageError } from '../core/errors.js';
import { parseNumber, parseTime } from '../core/parse.js';
import { resolveAdminEndpoint } from '../admin/admin-endpoint.js';
import { createRegistry } from '../modules.js';
import { DEFAULT_CONF_PATH, DEFAULT_PREFIX } from './version.js';
import {
  CommandTarget,
  DEFAULT_NGINX_CONF,
  DEPLOY_EXIT_CODES,
  deploy,
  DeployError,
  HitlessTarget,
  NginxTarget,
  splitCommand,
  type DeployEvent,
  type DeployOptions,
  type DeployPlan,
  type DeployReport,
  type DeployTarget,
  type Endpoint,
} from '../deploy/index.js';

/** Where the command writes: steps and the outcome to stdout, errors to stderr. */
export interface DeployCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const USAGE =
  'usage: hitless deploy --server-name NAME --cert FILE --key FILE [--chain FILE] [--target nginx|hitless|command]\n' +
  '                      [--conf PATH] [--verify HOST:PORT]... [--json] [options]\n' +
  '       hitless deploy config --config-file FILE [--dest PATH] [--health URL]... [options]\n';

const HELP =
  USAGE +
  '\n' +
  'Deploys a certificate (or a configuration file): preflight, stage, validate with the\n' +
  "target's checker, back up, swap atomically, reload, verify on the wire, roll back on failure.\n" +
  '\n' +
  'what:\n' +
  '  --server-name NAME     a name the certificate is deployed for; repeatable\n' +
  '  --cert FILE            the certificate (PEM), optionally followed by its chain\n' +
  '  --key FILE             its private key (PEM, unencrypted)\n' +
  '  --chain FILE           the intermediates, if not in --cert\n' +
  '  --config-file FILE     (deploy config) the new configuration file\n' +
  '  --dest PATH            (deploy config) the file it replaces (default: the main file, --conf)\n' +
  'where:\n' +
  '  --target nginx|hitless|command (default nginx)\n' +
  `  --conf PATH            nginx's main configuration (default ${DEFAULT_NGINX_CONF}); hitless's, to find admin_listen\n` +
  "  --socket PATH          (hitless) the admin API's unix socket (default: the configuration's admin_listen)\n" +
  '  --admin-url URL        (hitless) a loopback TCP admin API, http://127.0.0.1:PORT, with --token-file\n' +
  '  --token-file FILE      (hitless) the bearer token of --admin-url\n' +
  '  --nginx PATH           the nginx binary (default nginx on PATH)\n' +
  "  -p, --prefix DIR       nginx's -p, for nginx -t and the reload\n" +
  "  -g, --globals TEXT     nginx's -g, for nginx -t and the reload\n" +
  "  --cert-path PATH       deploy the certificate here (nginx: instead of the vhost's paths)\n" +
  '  --key-path PATH        deploy the key here\n' +
  '  --chain-path PATH      (command) the chain in a file of its own\n' +
  '  --validate-cmd CMD     (command) checker; {cert} {key} {chain} {config} name the staged files\n' +
  '  --reload-cmd CMD       reload command, run without a shell (default nginx -s reload)\n' +
  '  --allow-http-level     (nginx) deploy to ssl_certificate inherited from http, shared by every vhost\n' +
  "  --reload-timeout TIME  (nginx) how long nginx's old workers may keep accepting after the reload (default 10s)\n" +
  'verification:\n' +
  "  --verify HOST:PORT     endpoint to verify; repeatable (default: the vhost's listen ... ssl)\n" +
  '  --health URL           (deploy config) URL that must answer 2xx after the reload; repeatable\n' +
  '  --trusted-ca FILE      trust anchors for verification (default: the system store)\n' +
  '  --verify-attempts N    rounds before rolling back (default 5)\n' +
  '  --verify-timeout TIME  deadline of one handshake (default 5s)\n' +
  '  --no-verify            do not verify on the wire\n' +
  'safety:\n' +
  '  --backups N            backups of each file to keep (default 5)\n' +
  '  --lock-file PATH       lock serialising deploys (default <conf>.hitless-lock)\n' +
  '  --lock-timeout TIME    wait for another deploy at most this long (default 60s)\n' +
  '  --json                 print one JSON object with the outcome and every step\n' +
  '\n' +
  'exit: 0 deployed or skipped, 1 failed before any change, 2 bad input, 3 validation failed,\n' +
  '      4 failed after the swap and rolled back, 5 rollback failed\n';

const OPTIONS = {
  'server-name': { type: 'string', multiple: true },
  cert: { type: 'string' },
  key: { type: 'string' },
  chain: { type: 'string' },
  'config-file': { type: 'string' },
  dest: { type: 'string' },
  target: { type: 'string' },
  conf: { type: 'string' },
  socket: { type: 'string' },
  'admin-url': { type: 'string' },
  'token-file': { type: 'string' },
  nginx: { type: 'string' },
  prefix: { type: 'string', short: 'p' },
  globals: { type: 'string', short: 'g' },
  'cert-path': { type: 'string' },
  'key-path': { type: 'string' },
  'chain-path': { type: 'string' },
  'validate-cmd': { type: 'string' },
  'reload-cmd': { type: 'string' },
  'reload-timeout': { type: 'string' },
  'allow-http-level': { type: 'boolean' },
  verify: { type: 'string', multiple: true },
  health: { type: 'string', multiple: true },
  'trusted-ca': { type: 'string' },
  'verify-attempts': { type: 'string' },
  'verify-timeout': { type: 'string' },
  'no-verify': { type: 'boolean' },
  backups: { type: 'string' },
  'lock-file': { type: 'string' },
  'lock-timeout': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Runs `hitless deploy` with the arguments after `deploy`; resolves with the exit code. */
export async function deployCommand(argv: string[], io: DeployCommandIo): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr.write(`hitless deploy: ${(err as Error).message}\n${USAGE}`);
    return DEPLOY_EXIT_CODES.refused;
  }
  if (values.help === true) {
    io.stdout.write(HELP);
    return 0;
  }
  const json = values.json === true;
  let plan: DeployPlan;
  let options: DeployOptions;
  try {
    const [mode, ...extra] = positionals;
    if (extra.length > 0 || (mode !== undefined && mode !== 'config' && mode !== 'cert')) {
      throw usage(`unexpected argument "${extra[0] ?? mode ?? ''}"`);
    }
    const config = mode === 'config' || values['config-file'] !== undefined;
    plan = config ? configPlan(values) : certificatePlan(values);
    options = deployOptions(values, json ? undefined : (event) => printEvent(event, io));
  } catch (err) {
    if (!(err instanceof HitlessError)) throw err;
    return refuse(err, json, io);
  }
  const report = await deploy(plan, options);
  if (json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printOutcome(report, io);
  return report.exitCode;
}

function certificatePlan(values: Values): DeployPlan {
  const names = values['server-name'] ?? [];
  if (names.length === 0) throw usage('--server-name is required');
  const certPath = required(values.cert, '--cert');
  const keyPath = required(values.key, '--key');
  const chainPath = values.chain;
  return {
    kind: 'certificate',
    target: buildTarget(values),
    names,
    input: {
      certificate: readInput(certPath),
      key: readInput(keyPath),
      ...(chainPath === undefined ? {} : { chain: readInput(chainPath) }),
      labels: { certificate: certPath, key: keyPath, ...(chainPath === undefined ? {} : { chain: chainPath }) },
    },
    ...(values.verify === undefined ? {} : { endpoints: values.verify.map(parseEndpoint) }),
  };
}

function configPlan(values: Values): DeployPlan {
  const source = required(values['config-file'], '--config-file');
  if (values.cert !== undefined || values.key !== undefined) throw usage('a configuration deploy takes no --cert or --key');
  return {
    kind: 'config',
    target: buildTarget(values),
    config: readInput(source),
    ...(values.dest === undefined ? {} : { path: values.dest }),
    ...(values.health === undefined ? {} : { healthUrls: values.health }),
  };
}

function buildTarget(values: Values): DeployTarget {
  const kind = values.target ?? 'nginx';
  const reload = values['reload-cmd'] === undefined ? undefined : command(values['reload-cmd'], '--reload-cmd');
  if (kind === 'nginx') {
    if (values['validate-cmd'] !== undefined) throw usage('--validate-cmd is for --target command; nginx is checked with nginx -t');
    return new NginxTarget({
      conf: values.conf,
      nginx: values.nginx,
      prefix: values.prefix,
      globals: values.globals,
      certPath: values['cert-path'],
      keyPath: values['key-path'],
      reloadCommand: reload,
      allowHttpLevel: values['allow-http-level'],
      lockPath: values['lock-file'],
      reloadSettleMs: time(values['reload-timeout'], '--reload-timeout'),
    });
  }
  if (kind === 'command') {
    if (reload === undefined) throw usage('--target command needs --reload-cmd');
    return new CommandTarget({
      certPath: values['cert-path'],
      keyPath: values['key-path'],
      chainPath: values['chain-path'],
      configPath: values.dest,
      validateCommand: values['validate-cmd'] === undefined ? undefined : command(values['validate-cmd'], '--validate-cmd'),
      reloadCommand: reload,
      lockPath: values['lock-file'],
    });
  }
  if (kind === 'hitless') {
    for (const flag of ['validate-cmd', 'reload-cmd', 'cert-path', 'key-path', 'chain-path', 'nginx'] as const) {
      if (values[flag] !== undefined) throw usage(`--${flag} is not for --target hitless, which deploys through the admin API`);
    }
    const where = { socket: values.socket, url: values['admin-url'], tokenFile: values['token-file'], conf: values.conf, prefix: values.prefix };
    return new HitlessTarget({ endpoint: resolveAdminEndpoint(where, { prefix: DEFAULT_PREFIX, conf: DEFAULT_CONF_PATH, registry: createRegistry() }), lockPath: values['lock-file'] });
  }
  throw usage(`invalid --target "${kind}": must be nginx, hitless or command`);
}

function deployOptions(values: Values, onEvent: ((event: DeployEvent) => void) | undefined): DeployOptions {
  const trusted = values['trusted-ca'];
  return {
    verify: values['no-verify'] !== true,
    ...(trusted === undefined ? {} : { trustedCa: readInput(trusted) }),
    verifyAttempts: count(values['verify-attempts'], '--verify-attempts', 1),
    verifyTimeoutMs: time(values['verify-timeout'], '--verify-timeout'),
    keepBackups: count(values.backups, '--backups', 0),
    lockTimeoutMs: time(values['lock-timeout'], '--lock-timeout'),
    onEvent,
  };
}

/** HOST:PORT, with IPv6 in brackets: `127.0.0.1:443`, `[::1]:443`, `example.com:8443`. */
export function parseEndpoint(text: string): Endpoint {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || !(port >= 1 && port <= 65535)) throw usage(`invalid --verify "${text}": expected HOST:PORT`);
  return { host: (match[1] ?? match[2]) as string, port };
}

function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', formatSyscallError('open', path, err));
  }
}

function command(text: string, flag: string): string[] {
  try {
    return splitCommand(text);
  } catch (err) {
    throw usage(`invalid ${flag}: ${(err as Error).message}`);
  }
}

function count(text: string | undefined, flag: string, min: number): number | undefined {
  if (text === undefined) return undefined;
  const value = parseNumber(text);
  if (value === undefined || value < min) throw usage(`invalid ${flag} "${text}": expected a whole number of at least ${min}`);
  return value;
}

function time(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = parseTime(text);
  if (value === undefined) throw usage(`invalid ${flag} "${text}": expected a time such as 5s or 500ms`);
  return value;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw usage(`${flag} is required`);
  return value;
}

function usage(message: string): UsageError {
  return new UsageError(message);
}

function refuse(err: HitlessError, json: boolean, io: DeployCommandIo): number {
  const exitCode = DEPLOY_EXIT_CODES.refused;
  if (json) io.stdout.write(`${JSON.stringify({ outcome: 'refused', exitCode, error: { code: err.code, message: err.message }, steps: [], notes: [] }, null, 2)}\n`);
  else io.stderr.write(`hitless deploy: [error] ${err.message}\n`);
  return exitCode;
}

function printEvent(event: DeployEvent, io: DeployCommandIo): void {
  if (event.type === 'note') {
    io.stdout.write(`hitless deploy: note: ${event.message}\n`);
  } else if (event.type === 'step') {
    const { step } = event;
    const head = `hitless deploy: ${step.name.padEnd(15)} ${step.status.padEnd(7)} ${`${step.durationMs.toFixed(1)} ms`.padStart(10)}`;
    const [first = '', ...rest] = (step.detail ?? '').split('\n');
    io.stdout.write(`${head}  ${first}\n${rest.map((line) => `    ${line}\n`).join('')}`);
  }
}

function printOutcome(report: DeployReport, io: DeployCommandIo): void {
  const what = report.outcome === 'skipped' ? 'skipped: already deployed' : report.outcome;
  io.stdout.write(`hitless deploy: ${what} (exit ${report.exitCode}) in ${report.durationMs.toFixed(0)} ms\n`);
  if (report.error !== undefined) io.stderr.write(`hitless deploy: [error] ${report.error.code}: ${report.error.message}\n`);
  if (report.rollbackError !== undefined) io.stderr.write(`hitless deploy: [alert] ${report.rollbackError.code}: ${report.rollbackError.message}\n`);
  if (report.operatorAction !== undefined) io.stderr.write(`hitless deploy: [alert] ${report.operatorAction.split('\n').join('\nhitless deploy: [alert] ')}\n`);
  if (report.outcome === 'rolled-back') io.stderr.write('hitless deploy: the deploy failed after the swap and was rolled back: the previous version is served\n');
  if (report.outcome === 'refused' || report.outcome === 'validation-failed' || report.outcome === 'failed') {
    io.stderr.write('hitless deploy: nothing live was changed\n');
  }
}
