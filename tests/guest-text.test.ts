// What wasp prints of a guest's text (src/guest-text.ts): one safe line for messages, safe lines
// for console text, decodable back to exactly what the guest sent. No KVM needed.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { escapeGuestLine, escapeGuestText } from "../src/guest-text.ts";
import { GuestPanicError, JsError, QueueFullError, TimeoutError } from "../src/errors.ts";
import { decodeError, encodeError } from "../src/api/wire.ts";

const encoder = new TextEncoder();
const utf8 = (s: string) => encoder.encode(s);

/** What may never reach a terminal from a guest: controls, DEL, C1, bidi and line separators, lone surrogates. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/u;
const CONTROL_BUT_LINES = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/u;

/**
 * The inverse of the escaping, written from its documented grammar (docs/errors.md): parses every
 * escape strictly, so an output with an escape the grammar does not have fails the test. Returns
 * the pieces as bytes (`\xHH` is one byte) or as text.
 */
function unescape(s: string, as: "bytes"): Uint8Array;
function unescape(s: string, as: "string"): string;
function unescape(s: string, as: "bytes" | "string"): Uint8Array | string {
  const bytes: number[] = [];
  let text = "";
  const put = (piece: string) => {
    if (as === "bytes") bytes.push(...utf8(piece));
    else text += piece;
  };
  for (let i = 0; i < s.length; ) {
    if (s[i] !== "\\") {
      const cp = s.codePointAt(i) ?? 0;
      put(String.fromCodePoint(cp));
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const kind = s[i + 1];
    if (kind === "\\" || kind === "n" || kind === "r" || kind === "t") {
      put({ "\\": "\\", n: "\n", r: "\r", t: "\t" }[kind]);
      i += 2;
    } else if (kind === "x") {
      const hex = s.slice(i + 2, i + 4);
      if (!/^[0-9a-f]{2}$/.test(hex)) throw new Error(`bad \\x escape at ${i} in ${JSON.stringify(s)}`);
      const b = parseInt(hex, 16);
      if (as === "bytes") bytes.push(b);
      else text += String.fromCharCode(b);
      i += 4;
    } else if (kind === "u") {
      const m = /^\{([0-9a-f]{1,6})\}/.exec(s.slice(i + 2));
      if (!m?.[1]) throw new Error(`bad \\u escape at ${i} in ${JSON.stringify(s)}`);
      put(String.fromCodePoint(parseInt(m[1], 16)));
      i += 2 + m[0].length;
    } else throw new Error(`unknown escape at ${i} in ${JSON.stringify(s)}`);
  }
  return as === "bytes" ? new Uint8Array(bytes) : text;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Any byte string, biased toward what matters: random bytes alone seldom form UTF-8, so pieces
 * are also well-formed characters, C1 and bidi controls, and cut or overlong sequences.
 */
const guestBytes = fc
  .array(
    fc.oneof(
      fc.uint8Array({ maxLength: 6 }),
      fc.string({ unit: "binary", maxLength: 4 }).map(utf8),
      fc.constantFrom(
        utf8("\u009b"), utf8("\u0085"), utf8("\u202e"), utf8("\u2066"), utf8("\u2028"), utf8("\u061c"),
        utf8("\\"), utf8("\\x1b"), utf8("\\u{9b}"), utf8("\r\n"), utf8("\x1b[2J"), utf8("\ufeff"),
        new Uint8Array([0xe2, 0x80]), new Uint8Array([0xc0, 0xaf]), new Uint8Array([0xed, 0xa0, 0x80]),
        new Uint8Array([0xf4, 0x90, 0x80, 0x80]), new Uint8Array([0xf0, 0x9f, 0x98]),
      ),
    ),
    { maxLength: 12 },
  )
  .map(concat);

/** Any string, lone surrogates included. */
const guestString = fc
  .array(fc.oneof(fc.string({ unit: "binary", maxLength: 4 }), fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))), { maxLength: 8 })
  .map((parts) => parts.join(""));

/** Printable ASCII without a backslash: what needs no escaping. */
const plain = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).filter((c) => c !== 0x5c).map((c) => String.fromCharCode(c)) });

describe("escapeGuestLine (error messages, logs)", () => {
  test("for any bytes: one line with no control, bidi or separator character", () => {
    fc.assert(
      fc.property(guestBytes, (b) => {
        const line = escapeGuestLine(b);
        expect(line).not.toMatch(CONTROL);
        expect(line.includes("\n")).toBe(false);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("for any bytes: decodes back to exactly those bytes (so two inputs never give one output)", () => {
    fc.assert(
      fc.property(guestBytes, (b) => {
        expect(unescape(escapeGuestLine(b), "bytes")).toEqual(b);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("for any string, lone surrogates included: safe, and decodes back to that string", () => {
    fc.assert(
      fc.property(guestString, (s) => {
        const line = escapeGuestLine(s);
        expect(line).not.toMatch(CONTROL);
        expect(unescape(line, "string")).toBe(s);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("a string and its UTF-8 bytes are escaped alike", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(escapeGuestLine(utf8(s))).toBe(escapeGuestLine(s));
      }),
    );
  });

  test("printable ASCII without a backslash comes back as it is, the same string", () => {
    fc.assert(
      fc.property(plain, (s) => {
        expect(escapeGuestLine(s)).toBe(s);
        expect(escapeGuestLine(utf8(s))).toBe(s);
      }),
    );
    const s = "the guest says hello";
    expect(Object.is(escapeGuestLine(s), s)).toBe(true);
  });

  test("the escapes, one per kind", () => {
    expect(escapeGuestLine("boom\nwasp: forged")).toBe("boom\\nwasp: forged");
    expect(escapeGuestLine("\x1b[2J")).toBe("\\x1b[2J");
    expect(escapeGuestLine("a\\b\tc\rd\x00\x7f")).toBe("a\\\\b\\tc\\rd\\x00\\x7f");
    expect(escapeGuestLine("\u009b31m")).toBe("\\u{9b}31m");
    expect(escapeGuestLine("abc\u202efed\u2066")).toBe("abc\\u{202e}fed\\u{2066}");
    expect(escapeGuestLine("héllo ✓ 😀")).toBe("héllo ✓ 😀");
    expect(escapeGuestLine(new Uint8Array([0xff, 0x41, 0xc3, 0x28, 0xed, 0xa0, 0x80]))).toBe("\\xffA\\xc3(\\xed\\xa0\\x80");
    expect(escapeGuestLine("\ud800x")).toBe("\\u{d800}x");
  });
});

describe("escapeGuestText (console and output shown as text)", () => {
  test("for any bytes: nothing but newlines and tabs of the control characters, and decodes back", () => {
    fc.assert(
      fc.property(guestBytes, (b) => {
        const text = escapeGuestText(b);
        expect(text).not.toMatch(CONTROL_BUT_LINES);
        expect(unescape(text, "bytes")).toEqual(b);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("lines stay lines; a carriage return, which could overwrite a line, is escaped", () => {
    expect(escapeGuestText(utf8("line 1\n\tline 2\r\n"))).toBe("line 1\n\tline 2\\r\n");
    expect(escapeGuestText("ok\x1b]0;title\x07")).toBe("ok\\x1b]0;title\\x07");
    const s = "hello from a virtine\n";
    expect(escapeGuestText(utf8(s))).toBe(s);
    expect(Object.is(escapeGuestText(s), s)).toBe(true);
  });
});

describe("GuestPanicError quotes the guest safely", () => {
  test("a panic message with a newline is one line; guestMessage keeps the raw text", () => {
    const e = new GuestPanicError("boom\nwasp: forged");
    expect(e.message).toBe("the guest panicked: boom\\nwasp: forged");
    expect(e.message.split("\n").length).toBe(1);
    expect(e.guestMessage).toBe("boom\nwasp: forged");
  });

  test("terminal escapes and invalid UTF-8 in the guest's bytes are escaped in the message", () => {
    const e = new GuestPanicError(new Uint8Array([...utf8("\x1b[2Jgone"), 0xff]));
    expect(e.message).toBe("the guest panicked: \\x1b[2Jgone\\xff");
    expect(e.guestMessage).toBe("\x1b[2Jgone\ufffd");
  });

  test("across the worker boundary the message stays escaped and guestMessage raw", () => {
    const e = decodeError(encodeError(new GuestPanicError("a\nb\u202e")));
    expect(e).toBeInstanceOf(GuestPanicError);
    expect(e.message).toBe("the guest panicked: a\\nb\\u{202e}");
    expect((e as GuestPanicError).guestMessage).toBe("a\nb\u202e");
  });

  test("an error's class is found by its code, not its name (a minifier renames classes)", () => {
    const encoded = JSON.parse(encodeError(new TimeoutError(250)));
    const e = decodeError(JSON.stringify({ ...encoded, name: "Ge" }));
    expect(e).toBeInstanceOf(TimeoutError);
    expect((e as TimeoutError).timeoutMs).toBe(250);
    for (const err of [new JsError("TypeError", "m", "", "call"), new QueueFullError(3), new GuestPanicError("p")]) {
      expect(decodeError(JSON.stringify({ ...JSON.parse(encodeError(err)), name: "X" }))).toBeInstanceOf(err.constructor as never);
    }
  });
});
