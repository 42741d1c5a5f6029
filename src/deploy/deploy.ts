/**
 * The deploy engine. One order for every target and every kind of deploy:
 *
 *   read, lock, locate, preflight, compare (skip if identical), stage, validate, backup,
 *   commit, reload, verify; and after a commit, on any failure: restore, reload, verify the
 *   previous state is served again.
 *
 * Nothing live changes before `commit`, so a failure up to there leaves the target as it was
 * (outcomes `refused`, `validation-failed`, `failed`). Backups are taken after validation, so a
 * deploy that was refused never pushes an older backup out of the kept N.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { DEPLOY_EXIT_CODES, DeployError, type DeployOutcome } from './deploy-error.js';
import { DEFAULT_KEEP_BACKUPS } from './backup.js';
import { DeployLock } from './lock.js';
import { CertificateInputError, readCertificateMaterial, splitPem, type CertificateInput, type CertificateMaterial } from '../tls/material.js';
import { covers, describe, preflight } from '../tls/preflight.js';
import { StepRecorder, round, type DeployEvent, type DeployReport } from './report.js';
import { formatCommand } from './run-command.js';
import type { DeployTarget, Endpoint, FileChange, Placement, TargetChange } from './targets/target.js';
import { checkHealth, type HealthCheck } from './verify-http.js';
import { formatEndpoint, verifyServedCertificate, type TlsCheck } from './verify-tls.js';

/** A certificate deploy: which names, which material, where. */
export interface CertificatePlan {
  readonly kind: 'certificate';
  readonly target: DeployTarget;
  /** The server names the certificate is deployed for; at least one. */
  readonly names: readonly string[];
  readonly input: CertificateInput;
  /** Endpoints to verify; default the target's (nginx: the vhost's `listen ... ssl`). */
  readonly endpoints?: readonly Endpoint[] | undefined;
}

/** A configuration deploy: a new configuration file, checked with the target's checker. */
export interface ConfigPlan {
  readonly kind: 'config';
  readonly target: DeployTarget;
  /** The new content. */
  readonly config: Buffer;
  /** The file it replaces; default the target's main configuration file. */
  readonly path?: string | undefined;
  /** URLs that must answer 2xx after the reload; default none (no verification). */
  readonly healthUrls?: readonly string[] | undefined;
}

/** What to deploy. */
export type DeployPlan = CertificatePlan | ConfigPlan;

/** How to deploy; every option has a default. */
export interface DeployOptions {
  /** Verify on the wire after the reload; default true. */
  readonly verify?: boolean | undefined;
  /** Trust anchors for verification, PEM; default the system store. */
  readonly trustedCa?: string | Buffer | undefined;
  /** Rounds of verification before the deploy is rolled back; default 5. */
  readonly verifyAttempts?: number | undefined;
  /** Deadline of one verification handshake or request, in ms; default 5000. */
  readonly verifyTimeoutMs?: number | undefined;
  /** First pause between verification rounds, doubled up to 2 s, in ms; default 200. */
  readonly verifyBackoffMs?: number | undefined;
  /** Backups of each file to keep; default 5. */
  readonly keepBackups?: number | undefined;
  /** How long to wait for another deploy to the same target, in ms; default 60000. */
  readonly lockTimeoutMs?: number | undefined;
  /** The time certificates must be valid at; default now. */
  readonly now?: Date | undefined;
  /** Receives each step as it starts and ends, and notes. */
  readonly onEvent?: ((event: DeployEvent) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

interface RunState {
  outcome?: DeployOutcome;
  error?: DeployError;
  rollbackError?: DeployError;
  placement?: Placement;
  change?: TargetChange;
  verified: (TlsCheck | HealthCheck)[];
  committed: boolean;
}

/** Deploys `plan` and reports what happened. Never rejects for a failed deploy: see `outcome`. */
export async function deploy(plan: DeployPlan, options: DeployOptions = {}): Promise<DeployReport> {
  const rec = new StepRecorder(options.onEvent);
  const state: RunState = { verified: [], committed: false };
  let material: CertificateMaterial | undefined;
  let sha256 = '';
  let lock: DeployLock | undefined;
  try {
    if (plan.kind === 'certificate') {
      if (plan.names.length === 0) throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', 'Give at least one server name');
      const read = await rec.run('read', () => readCertificateMaterial(plan.input), (m) => `certificate "${describe(m.leaf)}", chain of ${m.chain.length}`);
      material = read;
      rec.redactor = read.redactor;
      sha256 = read.sha256;
    } else {
      sha256 = createHash('sha256').update(plan.config).digest('hex');
    }
    lock = await rec.run('lock', () => DeployLock.acquire(plan.target.lockPath, { timeoutMs: options.lockTimeoutMs, signal: options.signal }), (l) => l.path);
    await runLocked(plan, material, options, rec, state);
  } catch (err) {
    // Material that cannot be deployed refuses the deploy: nothing was touched yet.
    const error = err instanceof CertificateInputError
      ? new DeployError('HITLESS_ERR_DEPLOY_INPUT', err.message, { cause: err })
      : err instanceof DeployError ? err : new DeployError('HITLESS_ERR_DEPLOY_IO', err instanceof Error ? err.message : String(err), { cause: err });
    state.error = error;
    if (state.committed) await rollback(plan, options, rec, state);
    else state.outcome = outcomeBeforeCommit(error);
  } finally {
    if (state.change !== undefined) {
      const change = state.change;
      const succeeded = state.outcome === 'deployed';
      await rec.run('cleanup', () => change.finish(succeeded)).catch(() => undefined);
    }
    await lock?.release().catch(() => undefined);
  }
  return buildReport(plan, material, sha256, rec, state);
}

async function runLocked(plan: DeployPlan, material: CertificateMaterial | undefined, options: DeployOptions, rec: StepRecorder, state: RunState): Promise<void> {
  const { target } = plan;
  const placement = await rec.run(
    'locate',
    () => (plan.kind === 'certificate' ? target.locateCertificate(plan.names, (material as CertificateMaterial).leaf) : target.locateConfig(plan.path)),
    (p) => `${p.where}: ${p.destinations.map((d) => `${d.role} ${d.path}`).join(', ')}`,
  );
  state.placement = placement;
  for (const note of placement.notes) rec.note(note);

  const changes: FileChange[] = placement.destinations.map((destination) => ({
    destination,
    data: plan.kind === 'config' ? plan.config : contentFor(destination.role, material as CertificateMaterial, placement),
  }));
  const change = await target.prepare(changes, { keepBackups: options.keepBackups ?? DEFAULT_KEEP_BACKUPS, now: options.now ?? new Date() });
  state.change = change;

  if (plan.kind === 'certificate' && material !== undefined) {
    const previous = previousLeaf(change);
    await rec.run('preflight', () => {
      const extra = placement.names.filter((name) => !covers(material.leaf, name));
      const lost = extra.filter((name) => previous !== undefined && covers(previous, name));
      if (lost.length > 0) {
        throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', `The vhost also serves ${lost.map((n) => `"${n}"`).join(', ')}, which the live certificate covers and the new one does not`);
      }
      for (const name of extra) rec.note(`The vhost also serves "${name}", which the new certificate does not cover (nor did the old one)`);
      const result = preflight(material, { names: plan.names, wildcardNames: placement.wildcardNames, now: options.now });
      for (const warning of result.warnings) rec.note(warning);
      return result;
    }, (r) => r.checks.join('; '));
  }

  const same = await rec.run('compare', () => change.unchanged(), (u) => (u ? 'every destination already holds these bytes' : 'changes: ' + change.files().filter((f) => f.action !== 'unchanged').map((f) => `${f.action} ${f.path}`).join(', ')));
  if (same) {
    state.outcome = 'skipped';
    return;
  }
  options.signal?.throwIfAborted();
  await rec.run('stage', () => change.stage(), () => `${changes.length} file(s) staged beside their destinations`);
  const validated = await rec.run('validate', () => change.validate(options.signal), (r) => (r === undefined ? 'no checker for this target' : `${formatCommand(r.argv)}: ok`));
  if (validated === undefined) rec.note('The target has no checker: the staged files were only preflighted');
  await rec.run('backup', () => change.backup(), () => change.files().flatMap((f) => (f.backup === undefined ? [] : [f.backup])).join(', ') || 'nothing to back up');
  options.signal?.throwIfAborted();

  state.committed = true;
  await rec.run('commit', () => change.commit(), () => `${changes.length} file(s) renamed into place`);
  await rec.run('reload', () => target.reload(options.signal), (r) => (r === undefined ? 'nothing to reload' : formatCommand(r.argv)));
  await verifyDeployed(plan, material, placement, options, rec, state);
  state.outcome = 'deployed';
}

/** What a destination of each role receives. */
function contentFor(role: string, material: CertificateMaterial, placement: Placement): Buffer {
  const hasChainFile = placement.destinations.some((d) => d.role === 'chain');
  switch (role) {
    case 'certificate':
      return hasChainFile ? material.leafPem : material.fullchainPem;
    case 'chain':
      return material.chainPem;
    case 'key':
      return material.keyPem;
    case 'bundle':
      return Buffer.concat([material.fullchainPem, material.keyPem]);
    default:
      throw new DeployError('HITLESS_ERR_DEPLOY_INPUT', `A certificate deploy cannot write a ${role} file`);
  }
}

async function verifyDeployed(plan: DeployPlan, material: CertificateMaterial | undefined, placement: Placement, options: DeployOptions, rec: StepRecorder, state: RunState): Promise<void> {
  if (options.verify === false) return rec.skip('verify', 'verification turned off');
  if (plan.kind === 'config') {
    const urls = plan.healthUrls ?? [];
    if (urls.length === 0) return rec.skip('verify', 'no health URL given');
    await rec.run('verify', () => checkHealth(urls, { ...verifyOptions(options), onAttempt: (_, round) => state.verified.push(...round) }), (c) => `${c.length} URL(s) healthy`);
    return;
  }
  const endpoints = plan.endpoints ?? placement.endpoints;
  if (endpoints.length === 0) {
    rec.note('No endpoint to verify: the deploy was not verified on the wire (give --verify HOST:PORT)');
    return rec.skip('verify', 'no endpoint');
  }
  const leaf = (material as CertificateMaterial).leaf;
  const names = [...new Set([...plan.names, ...placement.names.filter((n) => covers(leaf, n))])];
  await rec.run(
    'verify',
    () => verifyServedCertificate(endpoints, names, { ...verifyOptions(options), expectedSha256: leaf.fingerprint256, onAttempt: (_, round) => state.verified.push(...round) }),
    (c) => `${c.length} fresh handshake(s) on ${endpoints.map(formatEndpoint).join(', ')} serve the new certificate, chain trusted`,
  );
}

async function rollback(plan: DeployPlan, given: DeployOptions, rec: StepRecorder, state: RunState): Promise<void> {
  // A rollback runs to its end even when the deploy was aborted: stopping half-way is worse.
  const options: DeployOptions = { ...given, signal: undefined };
  const change = state.change as TargetChange;
  try {
    await rec.run('restore', () => change.restore(), () => 'previous files back in place');
  } catch (err) {
    state.rollbackError = asRollbackError(err);
    state.outcome = 'rollback-failed';
    return;
  }
  let reloadError: DeployError | undefined;
  try {
    await rec.run('rollback-reload', () => plan.target.reload(options.signal), (r) => (r === undefined ? 'nothing to reload' : formatCommand(r.argv)));
  } catch (err) {
    reloadError = asRollbackError(err);
  }
  // The served state decides: if the old certificate is served again, the rollback worked even if
  // the reload command failed (it may be what failed the deploy, and nginx never reloaded).
  const previous = previousLeaf(change);
  const endpoints = plan.kind === 'certificate' ? (plan.endpoints ?? state.placement?.endpoints ?? []) : [];
  const urls = plan.kind === 'config' ? (plan.healthUrls ?? []) : [];
  const canVerify = options.verify !== false && ((previous !== undefined && endpoints.length > 0) || urls.length > 0);
  if (!canVerify) {
    if (reloadError !== undefined) {
      state.rollbackError = reloadError;
      state.outcome = 'rollback-failed';
    } else {
      rec.note('The rollback could not be verified on the wire');
      state.outcome = 'rolled-back';
    }
    return;
  }
  try {
    if (plan.kind === 'config') {
      await rec.run('rollback-verify', () => checkHealth(urls, verifyOptions(options)), (c) => `${c.length} URL(s) healthy`);
    } else {
      const names = plan.names;
      await rec.run(
        'rollback-verify',
        () => verifyServedCertificate(endpoints, names, { ...verifyOptions(options), expectedSha256: (previous as X509Certificate).fingerprint256, requireTrusted: false }),
        (c) => `${c.length} fresh handshake(s) serve the previous certificate "${describe(previous as X509Certificate)}"`,
      );
    }
    if (reloadError !== undefined) rec.note(`The reload failed during the rollback too, but the previous state is served: ${reloadError.message}`);
    state.outcome = 'rolled-back';
  } catch (err) {
    state.rollbackError = reloadError ?? asRollbackError(err);
    state.outcome = 'rollback-failed';
  }
}

function asRollbackError(err: unknown): DeployError {
  const message = err instanceof Error ? err.message : String(err);
  return new DeployError('HITLESS_ERR_DEPLOY_ROLLBACK', `Rollback failed: ${message}`, { cause: err });
}

function outcomeBeforeCommit(error: DeployError): DeployOutcome {
  switch (error.code) {
    case 'HITLESS_ERR_DEPLOY_INPUT':
      return 'refused';
    case 'HITLESS_ERR_DEPLOY_VALIDATE':
      return 'validation-failed';
    default:
      return 'failed';
  }
}

function previousLeaf(change: TargetChange): X509Certificate | undefined {
  const bytes = change.previous('certificate') ?? change.previous('bundle');
  if (bytes === undefined) return undefined;
  const [block] = splitPem(bytes.toString('latin1')).filter((b) => b.label === 'CERTIFICATE');
  try {
    return block === undefined ? undefined : new X509Certificate(block.pem);
  } catch {
    return undefined;
  }
}

function verifyOptions(options: DeployOptions): { ca?: string | Buffer; attempts?: number; timeoutMs?: number; backoffMs?: number; signal?: AbortSignal } {
  return {
    ...(options.trustedCa === undefined ? {} : { ca: options.trustedCa }),
    ...(options.verifyAttempts === undefined ? {} : { attempts: options.verifyAttempts }),
    ...(options.verifyTimeoutMs === undefined ? {} : { timeoutMs: options.verifyTimeoutMs }),
    ...(options.verifyBackoffMs === undefined ? {} : { backoffMs: options.verifyBackoffMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

function operatorAction(plan: DeployPlan, state: RunState, files: DeployReport['files']): string | undefined {
  if (state.outcome !== 'rollback-failed') return undefined;
  const restore = files
    .filter((f) => f.backup !== undefined || f.action === 'create')
    .map((f) => (f.backup === undefined ? `rm ${f.written ?? f.path}` : `cp -p ${f.backup} ${f.written ?? f.path}`));
  const check = plan.target.kind === 'nginx' ? 'run nginx -t, then reload nginx' : 'check and reload the server';
  return [
    'THE ROLLBACK FAILED: the server may serve neither the previous nor the new version.',
    restore.length > 0 ? `Put the previous files back: ${restore.join('; ')}` : 'Check the files listed above.',
    `Then ${check}, and check what is served (openssl s_client -connect HOST:PORT -servername NAME).`,
  ].join('\n');
}

function buildReport(plan: DeployPlan, material: CertificateMaterial | undefined, sha256: string, rec: StepRecorder, state: RunState): DeployReport {
  const outcome = state.outcome ?? 'failed';
  const files = state.change?.files() ?? [];
  const action = operatorAction(plan, state, files);
  const clean = (error: DeployError | undefined): { code: string; message: string } | undefined =>
    error === undefined ? undefined : { code: error.code, message: rec.clean(error.message) };
  const error = clean(state.error);
  const rollbackError = clean(state.rollbackError);
  return {
    outcome,
    exitCode: DEPLOY_EXIT_CODES[outcome],
    kind: plan.kind,
    target: plan.target.kind,
    ...(state.placement === undefined ? {} : { where: state.placement.where }),
    names: plan.kind === 'certificate' ? [...plan.names] : [],
    ...(material === undefined
      ? {}
      : {
          certificate: {
            subject: material.leaf.subject.replace(/\n/g, ', '),
            issuer: material.leaf.issuer.replace(/\n/g, ', '),
            sha256: material.leaf.fingerprint256,
            validTo: material.leaf.validTo,
            chainLength: material.chain.length,
          },
        }),
    materialSha256: sha256,
    files,
    verified: state.verified,
    steps: rec.steps,
    notes: rec.notes,
    ...(error === undefined ? {} : { error }),
    ...(rollbackError === undefined ? {} : { rollbackError }),
    ...(action === undefined ? {} : { operatorAction: action }),
    durationMs: round(rec.elapsed()),
  };
}
