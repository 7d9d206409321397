/**
 * The one way error messages quote text that came from a file or a flag: a short, escaped excerpt.
 *
 * Why: a message that echoes input verbatim can flood the terminal (a 5 MB CSV line) or drive it
 * (NUL, ESC sequences, bidi overrides that reorder what the user reads). `quote()` keeps at most
 * `max` characters, says how many it left out, and writes every control, format or lone-surrogate
 * character as an escape, so what reaches stderr is printable and bounded whatever the input.
 * Browser-safe (no Node imports).
 */

/** Longest excerpt quoted by default (characters of the input, before escaping). */
export const QUOTE_MAX = 80;

/** Characters written as escapes: C0/C1 controls, DEL, line/paragraph separators, bidi controls, BOM, and surrogates. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '"': '\\"', '\\': '\\\\' };

function escapeChar(c: string): string {
  return NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * A string as a double-quoted, escaped excerpt of at most `max` characters, e.g. `"abc…" (+4990
 * more characters)`; any other value as its JSON text (undefined, numbers, arrays: `[3]`),
 * escaped and cut the same way but without the quotes.
 */
export function quote(text: unknown, max = QUOTE_MAX): string {
  const isString = typeof text === 'string';
  let s: string;
  if (isString) s = text;
  else if (typeof text === 'number' || typeof text === 'bigint' || text === undefined) s = String(text);
  else {
    try {
      s = JSON.stringify(text) ?? String(text);
    } catch {
      s = Object.prototype.toString.call(text);
    }
  }
  // Cut on UTF-16 units, then drop a dangling high surrogate so the cut does not leave half a character.
  let cut = s.length > max ? s.slice(0, max) : s;
  if (cut.length < s.length && /[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  const more = s.length - cut.length;
  // Surrogate pairs stay (they are printable); lone surrogates and other unsafe characters are escaped.
  const body = cut.replace(/[\ud800-\udbff][\udc00-\udfff]|["\\]|[\s\S]/g, (c) => (c.length === 2 ? c : isString && (c === '"' || c === '\\') ? NAMED[c]! : c.replace(UNSAFE, escapeChar)));
  const ellipsis = more > 0 ? '…' : '';
  const note = more > 0 ? ` (+${more} more characters)` : '';
  return isString ? `"${body}${ellipsis}"${note}` : `${body}${ellipsis}${note}`;
}
