/**
 * Text from untrusted input (a bundle, a block map, a plan) on its way into an error message:
 * control characters (C0 but tab and newline, DEL, C1) become \u escapes, so a hostile file
 * cannot put ESC sequences on the operator's terminal or into a log.
 */
export function escapeControls(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    const control = (code < 0x20 && code !== 0x09 && code !== 0x0a) || (code >= 0x7f && code <= 0x9f);
    out += control ? `\\u${code.toString(16).padStart(4, '0')}` : char;
  }
  return out;
}

/** Input text quoted as a JSON string, with DEL and C1 escaped too (JSON.stringify leaves them raw). */
export function quoteInput(text: string): string {
  return escapeControls(JSON.stringify(text));
}

/** Untrusted text as one line of output: control characters escaped, and newlines too. */
export function escapeLine(text: string): string {
  return escapeControls(text).replaceAll('\n', '\\n');
}
