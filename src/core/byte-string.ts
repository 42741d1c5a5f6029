/**
 * Byte strings: request heads are read as latin1, one character per byte, so configuration text
 * (UTF-8) is converted to the same form once, when a generation is built.
 */

/** Converts UTF-8 text from the configuration to a byte string; ASCII comes back unchanged. */
export function toByteString(text: string): string {
  return /^[\x00-\x7f]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}
