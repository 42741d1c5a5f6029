/**
 * The record of a deploy: each step with its timing as it runs (events for the command line to
 * print, and the `hitless:deploy:step` diagnostics channel), and the report at the end. Every
 * string that leaves through here passes the material's Redactor first.
 */
import { channel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { DeployOutcome } from './deploy-error.js';
import type { Redactor } from '../tls/material.js';
import type { FileReport } from './targets/target.js';
import type { HealthCheck } from './verify-http.js';
import type { TlsCheck } from './verify-tls.js';

/** The steps of a deploy, in the order they can run. */
export type DeployStepName =
  | 'lock'
  | 'locate'
  | 'read'
  | 'preflight'
  | 'compare'
  | 'backup'
  | 'stage'
  | 'validate'
  | 'commit'
  | 'reload'
  | 'verify'
  | 'restore'
  | 'rollback-reload'
  | 'rollback-verify'
  | 'cleanup';

/** One step as it ran. */
export interface DeployStep {
  readonly name: DeployStepName;
  readonly status: 'ok' | 'failed' | 'skipped';
  /** When it started, in ms since the deploy started. */
  readonly startMs: number;
  readonly durationMs: number;
  /** What it did or why it failed, in one or a few lines. */
  readonly detail?: string;
}

/** What the engine tells its caller while it runs. */
export type DeployEvent =
  | { readonly type: 'step-start'; readonly name: DeployStepName }
  | { readonly type: 'step'; readonly step: DeployStep }
  | { readonly type: 'note'; readonly message: string };

/** The outcome of a deploy and everything it did. Holds no private key bytes. */
export interface DeployReport {
  readonly outcome: DeployOutcome;
  /** The exit status `hitless deploy` returns for this outcome. */
  readonly exitCode: number;
  readonly kind: 'certificate' | 'config';
  readonly target: string;
  /** Where on the target, as the target describes it. */
  readonly where?: string;
  readonly names: readonly string[];
  /** The deployed leaf. */
  readonly certificate?: {
    readonly subject: string;
    readonly issuer: string;
    readonly sha256: string;
    readonly validTo: string;
    readonly chainLength: number;
  };
  /** SHA-256 over certificate, chain and key bytes (or the configuration's bytes), hex. */
  readonly materialSha256: string;
  readonly files: readonly FileReport[];
  readonly verified: readonly (TlsCheck | HealthCheck)[];
  readonly steps: readonly DeployStep[];
  readonly notes: readonly string[];
  readonly error?: { readonly code: string; readonly message: string };
  /** The failure of the rollback, when it failed. */
  readonly rollbackError?: { readonly code: string; readonly message: string };
  /** What the operator must do now, when the deploy left something to do. */
  readonly operatorAction?: string;
  readonly durationMs: number;
}

/** Name of the diagnostics channel that receives every finished {@link DeployStep}. */
export const DEPLOY_STEP_CHANNEL = 'hitless:deploy:step';

const stepChannel = channel(DEPLOY_STEP_CHANNEL);

/** Times steps, collects notes, and emits both. */
export class StepRecorder {
  readonly steps: DeployStep[] = [];
  readonly notes: string[] = [];
  readonly #started = performance.now();
  readonly #onEvent: ((event: DeployEvent) => void) | undefined;
  #redactor: Redactor | undefined;

  constructor(onEvent: ((event: DeployEvent) => void) | undefined) {
    this.#onEvent = onEvent;
  }

  /** Sets the redactor once the key is known. */
  set redactor(redactor: Redactor) {
    this.#redactor = redactor;
  }

  /** Removes secrets from text. */
  clean(text: string): string {
    return this.#redactor === undefined ? text : this.#redactor.redact(text);
  }

  /** Milliseconds since the deploy started. */
  elapsed(): number {
    return performance.now() - this.#started;
  }

  /** Runs a step: times it, records it ok or failed (then rethrows). `detail` may describe the result. */
  async run<T>(name: DeployStepName, body: () => Promise<T> | T, detail?: (result: T) => string | undefined): Promise<T> {
    this.#emit({ type: 'step-start', name });
    const startMs = this.elapsed();
    try {
      const result = await body();
      this.#finish(name, 'ok', startMs, detail?.(result));
      return result;
    } catch (err) {
      this.#finish(name, 'failed', startMs, err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /** Records a step that did not run, and why. */
  skip(name: DeployStepName, why: string): void {
    this.#finish(name, 'skipped', this.elapsed(), why);
  }

  /** Adds a note for the operator. */
  note(message: string): void {
    const clean = this.clean(message);
    this.notes.push(clean);
    this.#emit({ type: 'note', message: clean });
  }

  #finish(name: DeployStepName, status: DeployStep['status'], startMs: number, detail: string | undefined): void {
    const step: DeployStep = {
      name,
      status,
      startMs: round(startMs),
      durationMs: round(this.elapsed() - startMs),
      ...(detail === undefined || detail === '' ? {} : { detail: this.clean(detail) }),
    };
    this.steps.push(step);
    this.#emit({ type: 'step', step });
    if (stepChannel.hasSubscribers) stepChannel.publish(step);
  }

  #emit(event: DeployEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A failing listener must not change the outcome of a deploy.
    }
  }
}

/** Milliseconds with one decimal. */
export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
