// Reading the command-line values the benchmarks share, with one wording for a bad value.

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
