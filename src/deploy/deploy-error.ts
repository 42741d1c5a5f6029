/**
 * The errors of a deploy and the exit codes they map to. Each failure names the step it belongs
 * to, so that a caller can tell "nothing was touched" from "touched and put back".
 */
import { HitlessError } from '../core/errors.js';

/** The codes a deploy fails with, one per kind of failure. */
export type DeployErrorCode =
  | 'HITLESS_ERR_DEPLOY_INPUT'
  | 'HITLESS_ERR_DEPLOY_LOCK'
  | 'HITLESS_ERR_DEPLOY_IO'
  | 'HITLESS_ERR_DEPLOY_VALIDATE'
  | 'HITLESS_ERR_DEPLOY_RELOAD'
  | 'HITLESS_ERR_DEPLOY_VERIFY'
  | 'HITLESS_ERR_DEPLOY_ROLLBACK';

/** A deploy that could not go on; `message` never holds private key bytes. */
export class DeployError extends HitlessError {
  declare readonly code: DeployErrorCode;

  constructor(code: DeployErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** How a deploy ended. */
export type DeployOutcome =
  | 'deployed'
  | 'skipped'
  | 'refused'
  | 'failed'
  | 'validation-failed'
  | 'rolled-back'
  | 'rollback-failed';

/** Exit status of `hitless deploy` for each outcome, as docs/deploy.md lists them. */
export const DEPLOY_EXIT_CODES: Readonly<Record<DeployOutcome, number>> = Object.freeze({
  deployed: 0,
  skipped: 0,
  // Operational failure before anything live changed: the lock, a write in a staging directory.
  failed: 1,
  refused: 2,
  'validation-failed': 3,
  'rolled-back': 4,
  'rollback-failed': 5,
});

/** Wraps anything thrown into a DeployError with `code`, keeping a DeployError as it is. */
export function asDeployError(err: unknown, code: DeployErrorCode, what: string): DeployError {
  if (err instanceof DeployError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new DeployError(code, `${what}: ${reason}`, { cause: err });
}
