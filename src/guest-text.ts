// Text a guest wrote, made safe to print. A guest controls every byte of its panic message, its
// console and its output; printed raw, a "\n" forges a `wasp: ...` line and "\x1b[2J" drives the
// user's terminal. Whatever wasp itself prints of a guest's text goes through one of the two
// functions below; the raw bytes go out only where the user asked for the data (`--output`) and
// through the TypeScript API (`result.console`, `guestMessage`), where they are data to the caller.
//
// The escapes, one style for both functions (docs/errors.md):
//   \\        a backslash (so every other escape is unambiguous: the output decodes back exactly)
//   \n \r \t  newline, carriage return, tab (escapeGuestText keeps \n and \t as they are)
//   \xHH      one byte: any other C0 control (0x00-0x1f), DEL (0x7f), or a byte that is not part of
//             well-formed UTF-8 (two lowercase hex digits)
//   \u{H..}   one code point: a C1 control (U+0080-U+009F), a character that reorders or breaks
//             what a terminal shows (U+061C, U+200E, U+200F, U+2028-U+202E, U+2066-U+2069), or,
//             in a string, a lone surrogate (lowercase hex, no padding)
// Everything else, printable ASCII and well-formed UTF-8, is kept as it is.
//
// This module depends on nothing, so src/errors.ts and every layer can use it.

/** Code points other than C0/DEL that are escaped: C1 controls, bidi controls, line separators. */
function isUnsafeCodePoint(cp: number): boolean {
  return (
    (cp >= 0x80 && cp <= 0x9f) ||
    cp === 0x061c || // ARABIC LETTER MARK
    cp === 0x200e || // LEFT-TO-RIGHT MARK
    cp === 0x200f || // RIGHT-TO-LEFT MARK
    (cp >= 0x2028 && cp <= 0x202e) || // LINE/PARAGRAPH SEPARATOR, bidi embeddings and overrides
    (cp >= 0x2066 && cp <= 0x2069) || // bidi isolates
    (cp >= 0xd800 && cp <= 0xdfff) // lone surrogates (strings only: UTF-8 cannot encode them)
  );
}

// The same sets for strings: the `u` flag makes [\ud800-\udfff] match only a lone surrogate.
const UNSAFE_CLASS = "\\x7f-\\x9f\\\\\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ud800-\\udfff";
// Compiled at first use: every process imports this module, few print a guest's text.
let unsafe: { line: RegExp; lineAll: RegExp; text: RegExp; textAll: RegExp } | undefined;
function unsafeSets(): NonNullable<typeof unsafe> {
  if (!unsafe) {
    const line = new RegExp(`[\\x00-\\x1f${UNSAFE_CLASS}]`, "u");
    const text = new RegExp(`[\\x00-\\x08\\x0b-\\x1f${UNSAFE_CLASS}]`, "u");
    unsafe = { line, lineAll: new RegExp(line.source, "gu"), text, textAll: new RegExp(text.source, "gu") };
  }
  return unsafe;
}

// ignoreBOM: a leading U+FEFF is the guest's text too, not something to strip
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const hex2 = (b: number) => `\\x${b.toString(16).padStart(2, "0")}`;

/** The escape of one ASCII byte (a control, DEL or the backslash). */
function escapeAscii(c: number): string {
  switch (c) {
    case 0x5c:
      return "\\\\";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    default:
      return hex2(c);
  }
}

function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return cp < 0x80 ? escapeAscii(cp) : `\\u{${cp.toString(16)}}`;
}

/**
 * For one line of a message (an error, a log line): every control character, newline included,
 * is escaped, so the result is one line that cannot move the cursor or restyle the terminal.
 * Returns `text` itself when nothing needs escaping.
 */
export function escapeGuestLine(text: string | Uint8Array): string {
  if (typeof text !== "string") return escapeBytes(text, false);
  const { line, lineAll } = unsafeSets();
  return line.test(text) ? text.replace(lineAll, escapeChar) : text;
}

/**
 * For a guest's console or output shown as text: like escapeGuestLine, but newlines and tabs are
 * kept, so lines stay lines. "\r" is still escaped: it would let a line overwrite the one before.
 */
export function escapeGuestText(text: string | Uint8Array): string {
  if (typeof text !== "string") return escapeBytes(text, true);
  const { text: unsafeText, textAll } = unsafeSets();
  return unsafeText.test(text) ? text.replace(textAll, escapeChar) : text;
}

/** True for an ASCII byte kept as it is. */
function keptAscii(c: number, keepLines: boolean): boolean {
  return (c >= 0x20 && c < 0x7f && c !== 0x5c) || (keepLines && (c === 0x0a || c === 0x09));
}

function escapeBytes(bytes: Uint8Array, keepLines: boolean): string {
  // The common case, well-formed UTF-8, is one native decode and one native regex scan; a lone
  // surrogate cannot come out of the decoder, so the string's escapes are the bytes' escapes.
  let text: string | undefined;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    // not well-formed: escaped byte by byte below
  }
  if (text !== undefined) return keepLines ? escapeGuestText(text) : escapeGuestLine(text);
  let i = 0;
  const parts: string[] = [];
  let run = 0; // start of the bytes kept as they are, decoded in one piece when the run ends
  const escape = (s: string, next: number) => {
    if (run < i) parts.push(utf8.decode(bytes.subarray(run, i)));
    parts.push(s);
    run = next;
  };
  while (i < bytes.length) {
    const c = bytes[i];
    if (c < 0x80) {
      if (!keptAscii(c, keepLines)) escape(escapeAscii(c), i + 1);
      i++;
      continue;
    }
    const len = sequenceLength(bytes, i);
    if (len === 0) {
      escape(hex2(c), i + 1);
      i++;
      continue;
    }
    const cp = codePoint(bytes, i, len);
    if (isUnsafeCodePoint(cp)) escape(`\\u{${cp.toString(16)}}`, i + len);
    i += len;
  }
  if (run < bytes.length) parts.push(utf8.decode(bytes.subarray(run)));
  return parts.join("");
}

/**
 * The length of the well-formed UTF-8 sequence that starts at `i` (a byte >= 0x80), or 0 if none
 * does: the Unicode Standard's table 3-7, which rules out overlong forms, surrogates and code points
 * above U+10FFFF.
 */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

function codePoint(b: Uint8Array, i: number, len: number): number {
  const lead = b[i];
  let cp = lead & (len === 2 ? 0x1f : len === 3 ? 0x0f : 0x07);
  for (let k = 1; k < len; k++) cp = (cp << 6) | (b[i + k] & 0x3f);
  return cp;
}
