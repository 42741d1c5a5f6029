/**
 * The nginx target: finds the vhost for a name in nginx's own configuration, deploys to the
 * files its `ssl_certificate` and `ssl_certificate_key` name, checks the staged files with
 * `nginx -t` against a staged copy of the configuration, and reloads with `nginx -s reload`.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { hasVariables } from '../../conf/lexer.js';
import { firstError, parseConfig, type DirectiveNode, type ParsedConfig } from '../../conf/parser.js';
import { DeployError } from '../deploy-error.js';
import { FileChangeSet, removeLeftovers } from '../file-change.js';
import { splitPem } from '../../tls/material.js';
import { runChecked, type CommandResult } from '../run-command.js';
import { acceptingWorkers, nginxPidPath, readPid, waitForReload } from './nginx-process.js';
import { stageNginxConfig } from './nginx-stage.js';
import { directivePath, findServers, readNginxLayout, where, type NginxLayout, type NginxServer } from './nginx-vhost.js';
import type { DeployTarget, Destination, Endpoint, FileChange, Placement, PrepareOptions, TargetChange } from './target.js';

/** Options of {@link NginxTarget}; everything has a default. */
export interface NginxTargetOptions {
  /** The main configuration file; default /etc/nginx/nginx.conf. */
  readonly conf?: string | undefined;
  /** The nginx binary; default `nginx`, found on PATH. */
  readonly nginx?: string | undefined;
  /** nginx's `-p` prefix, passed to `nginx -t` and to the reload; default none. */
  readonly prefix?: string | undefined;
  /** nginx's `-g` directives, passed to `nginx -t` and to the reload; default none. */
  readonly globals?: string | undefined;
  /** Deploy the certificate here instead of where the vhost's ssl_certificate points. */
  readonly certPath?: string | undefined;
  /** Deploy the key here instead of where the vhost's ssl_certificate_key points. */
  readonly keyPath?: string | undefined;
  /** Reload command; default `nginx [-p P] -c CONF [-g G] -s reload`. */
  readonly reloadCommand?: readonly string[] | undefined;
  /** Deploy to certificate paths inherited from the http block, shared by every vhost; default false. */
  readonly allowHttpLevel?: boolean | undefined;
  /** The lock file; default `<conf>.hitless-lock`. */
  readonly lockPath?: string | undefined;
  /** Deadline of `nginx -t` and of the reload, in ms; default 60000. */
  readonly commandTimeoutMs?: number | undefined;
  /** How long the old workers may keep accepting after the reload, in ms; default 10000. */
  readonly reloadSettleMs?: number | undefined;
}

/** The default main configuration file, as Debian's nginx has it. */
export const DEFAULT_NGINX_CONF = '/etc/nginx/nginx.conf';

/** A real NGINX on this host. */
export class NginxTarget implements DeployTarget {
  readonly kind = 'nginx';
  readonly lockPath: string;
  /** The main configuration file, absolute. */
  readonly conf: string;
  readonly #options: NginxTargetOptions;
  readonly #nginx: string;

  constructor(options: NginxTargetOptions = {}) {
    this.#options = options;
    this.conf = resolve(options.conf ?? DEFAULT_NGINX_CONF);
    this.#nginx = options.nginx ?? 'nginx';
    this.lockPath = resolve(options.lockPath ?? `${this.conf}.hitless-lock`);
  }

  /** `-p`, `-c` and `-g` as configured, for every nginx command. */
  #commonArgs(conf: string): string[] {
    const { prefix, globals } = this.#options;
    return [...(prefix === undefined ? [] : ['-p', prefix]), '-c', conf, ...(globals === undefined ? [] : ['-g', globals])];
  }

  /** The command `nginx -t` runs as for a given main file. */
  testCommand(conf: string): string[] {
    return [this.#nginx, '-t', ...this.#commonArgs(conf)];
  }

  /** The reload command. */
  reloadCommand(): readonly string[] {
    return this.#options.reloadCommand ?? [this.#nginx, ...this.#commonArgs(this.conf), '-s', 'reload'];
  }

  #parse(): ParsedConfig {
    const config = parseConfig(this.conf);
    const error = firstError(config.nodes);
    if (error !== undefined) throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', `Cannot read the nginx configuration: ${error.message}`, { cause: error });
    return config;
  }

  async locateCertificate(names: readonly string[], leaf: X509Certificate): Promise<Placement> {
    const layout = readNginxLayout(this.#parse());
    const servers = unique(names.flatMap((name) => findServers(layout, name)));
    const notes: string[] = [];
    const explicit = this.#options.certPath !== undefined || this.#options.keyPath !== undefined;
    let destinations: Destination[];
    const pairs: DirectiveNode[] = [];
    if (explicit) {
      const { certPath, keyPath } = this.#options;
      if (certPath === undefined || keyPath === undefined) throw refuse('Give both a certificate path and a key path, or neither');
      destinations = combine(resolve(certPath), resolve(keyPath));
      if (servers.length === 0) notes.push(`No server block for ${quoteList(names)} in ${this.conf}: nothing to verify unless endpoints are given`);
    } else {
      if (servers.length === 0) throw refuse(`No server block in ${this.conf} has a server_name matching ${quoteList(names)} and terminates TLS`);
      destinations = [];
      for (const server of servers) {
        const [cert, key] = this.#pairFor(layout, server, leaf, notes);
        pairs.push(cert, key);
        destinations.push(...combine(directivePath(layout, cert), directivePath(layout, key)));
      }
      destinations = uniqueDestinations(destinations);
    }
    for (const node of layout.allCertificateDirectives) {
      if (pairs.includes(node)) continue;
      const path = directivePath(layout, node);
      if (destinations.some((d) => d.path === path)) notes.push(`${path} is also named by "${node.name}" in ${where(node)}: that changes too`);
    }
    const serverNames = servers.flatMap((server) => server.names);
    return {
      where: servers.length === 0 ? this.conf : describeServers(servers),
      destinations,
      names: serverNames.filter((n) => !isPattern(n) && !names.includes(n)),
      wildcardNames: serverNames.filter((n) => isPattern(n) && !n.startsWith('~')),
      endpoints: uniqueEndpoints(servers.flatMap((s) => s.listens.filter((l) => l.ssl && l.endpoint !== undefined).map((l) => l.endpoint as Endpoint))),
      notes,
    };
  }

  /** The ssl_certificate/ssl_certificate_key pair of `server` that the new leaf replaces. */
  #pairFor(layout: NginxLayout, server: NginxServer, leaf: X509Certificate, notes: string[]): [DirectiveNode, DirectiveNode] {
    let certs = server.certificates;
    let keys = server.keys;
    const name = describeServers([server]);
    if (certs.length === 0) {
      certs = layout.httpCertificates;
      keys = layout.httpKeys;
      const [first] = certs;
      if (first === undefined) throw refuse(`${name} has no ssl_certificate, neither its own nor inherited from http`);
      if (this.#options.allowHttpLevel !== true) {
        throw refuse(
          `The ssl_certificate of ${name} is inherited from the http block in ${where(first)}: changing it changes every server that inherits it; give the server its own ssl_certificate, or allow deploys to the http level (--allow-http-level)`,
        );
      }
      const sharing = layout.servers.filter((s) => s.certificates.length === 0 && s !== server).length;
      notes.push(`Deploying to the http-level ssl_certificate in ${where(first)}, inherited by ${sharing} other server block(s)`);
    }
    if (certs.length !== keys.length) throw refuse(`${name} has ${certs.length} ssl_certificate and ${keys.length} ssl_certificate_key directives`);
    for (const node of [...certs, ...keys]) {
      if (hasVariables(node.args[0] ?? '')) throw refuse(`"${node.name}" in ${where(node)} holds variables: give the paths explicitly`);
    }
    let index = 0;
    if (certs.length > 1) {
      // nginx serves one certificate per key type (RSA and ECDSA side by side): replace the one of
      // the new leaf's type.
      const type = leaf.publicKey.asymmetricKeyType;
      const same = certs.flatMap((node, i) => (keyTypeOf(directivePath(layout, node)) === type ? [i] : []));
      if (same.length !== 1) {
        throw refuse(`${name} has ${certs.length} certificates and ${same.length === 0 ? 'none' : 'several'} of type ${type ?? 'unknown'}: give the paths explicitly`);
      }
      index = same[0] as number;
    }
    return [certs[index] as DirectiveNode, keys[index] as DirectiveNode];
  }

  async locateConfig(path: string | undefined): Promise<Placement> {
    const config = this.#parse();
    const destination = resolve(path ?? this.conf);
    if (!config.files.some((file) => file.path === destination)) {
      throw refuse(`${destination} is not read by ${this.conf}: deploy the file that includes it, or include it first`);
    }
    return { where: destination, destinations: [{ role: 'config', path: destination }], names: [], wildcardNames: [], endpoints: [], notes: [] };
  }

  async prepare(changes: readonly FileChange[], options: PrepareOptions): Promise<TargetChange> {
    return FileChangeSet.open(changes, options, (staged, signal) => this.validateStaged(staged, signal));
  }

  /** Runs `nginx -t` on a staged copy of the configuration that uses the staged files. */
  async validateStaged(staged: ReadonlyMap<string, string>, signal?: AbortSignal): Promise<CommandResult> {
    const config = this.#parse();
    for (const file of config.files) await removeLeftovers(file.path);
    const copy = await stageNginxConfig(config, staged);
    try {
      return await runChecked(this.testCommand(copy.main), 'HITLESS_ERR_DEPLOY_VALIDATE', 'nginx -t refused the staged files', {
        timeoutMs: this.#options.commandTimeoutMs,
        signal,
      });
    } finally {
      await copy.remove();
    }
  }

  /** Runs the reload command, then waits until the old workers stopped accepting (Linux). */
  async reload(signal?: AbortSignal): Promise<CommandResult> {
    const { prefix, globals } = this.#options;
    const pidPath = await nginxPidPath({ nginx: this.#nginx, conf: this.conf, prefix, globals }).catch(() => undefined);
    const master = pidPath === undefined ? undefined : readPid(pidPath);
    const before = acceptingWorkers(master);
    const result = await runChecked(this.reloadCommand(), 'HITLESS_ERR_DEPLOY_RELOAD', 'The reload failed', {
      timeoutMs: this.#options.commandTimeoutMs,
      signal,
    });
    if (master === undefined || before === undefined) return result;
    const settleMs = this.#options.reloadSettleMs ?? 10_000;
    if (!(await waitForReload(master, before, settleMs, signal))) {
      throw new DeployError(
        'HITLESS_ERR_DEPLOY_RELOAD',
        `nginx (master pid ${master}) still runs its old workers ${settleMs} ms after the reload: it did not load the new configuration (see its error log)`,
      );
    }
    return result;
  }
}

/** Certificate and key destinations; one file holding both when nginx is given the same path twice. */
function combine(certPath: string, keyPath: string): Destination[] {
  if (certPath === keyPath) return [{ role: 'bundle', path: keyPath }];
  return [
    { role: 'certificate', path: certPath },
    { role: 'key', path: keyPath },
  ];
}

function keyTypeOf(path: string): string | undefined {
  try {
    const [block] = splitPem(readFileSync(path, 'latin1')).filter((b) => b.label === 'CERTIFICATE');
    return block === undefined ? undefined : new X509Certificate(block.pem).publicKey.asymmetricKeyType;
  } catch {
    return undefined;
  }
}

function isPattern(name: string): boolean {
  return name === '' || name === '_' || name.startsWith('~') || name.startsWith('.') || name.includes('*');
}

function describeServers(servers: readonly NginxServer[]): string {
  const [first] = servers;
  if (first === undefined) return 'no server';
  const label = `server "${first.names.join(' ')}" in ${where(first.node)}`;
  return servers.length === 1 ? label : `${label} and ${servers.length - 1} more`;
}

function quoteList(names: readonly string[]): string {
  return names.map((name) => `"${name}"`).join(', ');
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

function uniqueDestinations(destinations: readonly Destination[]): Destination[] {
  const byPath = new Map<string, Destination>();
  for (const each of destinations) {
    const seen = byPath.get(each.path);
    if (seen !== undefined && seen.role !== each.role) throw refuse(`${each.path} is a ${seen.role} for one server and a ${each.role} for another`);
    byPath.set(each.path, each);
  }
  return [...byPath.values()];
}

function uniqueEndpoints(endpoints: readonly Endpoint[]): Endpoint[] {
  const byKey = new Map(endpoints.map((e) => [`${e.host}|${e.port}`, e]));
  return [...byKey.values()];
}

function refuse(message: string): DeployError {
  return new DeployError('HITLESS_ERR_DEPLOY_INPUT', message);
}
