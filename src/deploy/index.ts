/**
 * Certificate and configuration deploys that validate, verify on the wire and roll back by
 * themselves: the library behind `hitless deploy`. See docs/deploy.md.
 */
export { deploy, type CertificatePlan, type ConfigPlan, type DeployOptions, type DeployPlan } from './deploy.js';
export { DEPLOY_EXIT_CODES, DeployError, type DeployErrorCode, type DeployOutcome } from './deploy-error.js';
export { DEPLOY_STEP_CHANNEL, type DeployEvent, type DeployReport, type DeployStep, type DeployStepName } from './report.js';
export { readCertificateMaterial, Redactor, type CertificateInput, type CertificateMaterial } from '../tls/material.js';
export { covers, preflight, type PreflightRequest, type PreflightResult } from '../tls/preflight.js';
export { commitStagedFile, stageFile, writeFileAtomic, type FileMode } from '../core/atomic-write.js';
export { backupPath, DEFAULT_KEEP_BACKUPS, listBackups, pruneBackups } from './backup.js';
export { DeployLock, type LockOptions } from './lock.js';
export { FileChangeSet } from './file-change.js';
export { splitCommand, formatCommand, type CommandResult } from './run-command.js';
export { verifyServedCertificate, systemTrustAnchors, type TlsCheck, type TlsVerifyOptions } from './verify-tls.js';
export { checkHealth, type HealthCheck, type HealthOptions } from './verify-http.js';
export { NginxTarget, DEFAULT_NGINX_CONF, type NginxTargetOptions } from './targets/nginx.js';
export { CommandTarget, type CommandTargetOptions } from './targets/command.js';
export { HitlessTarget, type HitlessTargetOptions } from './targets/hitless.js';
export type { DeployTarget, Destination, Endpoint, FileChange, FileReport, FileRole, Placement, PrepareOptions, TargetChange } from './targets/target.js';
