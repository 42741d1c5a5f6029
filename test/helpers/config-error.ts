/** The refusal a configuration loader throws, for tests that assert nginx's words. */
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/core/errors.js';

/** The message of the ConfigError `load()` throws; fails the test when it throws none or another error. */
export function configErrorOf(load: () => unknown, what: string): string {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message;
  }
  return assert.fail(`no error for ${what}`);
}
