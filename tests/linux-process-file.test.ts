// A Linux program's process section (src/linux/process-file.ts) is read from snapshot files: untrusted
// bytes. Property-based, without a VM: what is written reads back the same; any bytes, and any
// change to a valid section, give a decoded section or one RangeError line, never another
// exception; and what decodes holds the invariants the restore relies on (the files' paths and sizes).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { decodeProcessFile, encodeProcessFile, sha256Hex, type ProcessFile } from "../src/linux/process-file.ts";

const pathArb = fc.array(fc.stringMatching(/^[a-z0-9_-]{1,8}$/), { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);

const sectionArb = fc.record({
  elf: fc.uint8Array({ maxLength: 300 }),
  files: fc.uniqueArray(fc.tuple(pathArb, fc.uint8Array({ maxLength: 64 })), { selector: (f) => f[0], maxLength: 6 }).map((l) => new Map(l)),
  args: fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")), { maxLength: 5 }),
  env: fc.array(fc.string().filter((s) => !s.includes("\0")), { maxLength: 5 }),
});

function decodeOrLine(bytes: Uint8Array): ProcessFile | string {
  try {
    return decodeProcessFile(bytes);
  } catch (e) {
    if (e instanceof RangeError && !e.message.includes("\n")) return e.message;
    throw e;
  }
}

describe("the process section", () => {
  test("what is written reads back the same: the executable, each placed file's path, size and hash, the arguments, the environment", () => {
    fc.assert(
      fc.property(sectionArb, (s) => {
        const back = decodeProcessFile(encodeProcessFile(s));
        expect([...back.elf]).toEqual([...s.elf]);
        expect(back.files).toEqual([...s.files].map(([path, d]) => ({ path, size: d.length, sha256: sha256Hex(d) })));
        expect(back.args).toEqual(s.args);
        expect(back.env).toEqual(s.env);
      }),
      { numRuns: runs(500) },
    );
  });

  test("any bytes, and any change to a valid section, decode or are one RangeError line", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodeOrLine(bytes);
      }),
      { numRuns: runs(2000) },
    );
    fc.assert(
      fc.property(sectionArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), (s, edits, cut) => {
        const bytes = encodeProcessFile(s);
        for (const [at, v] of edits) bytes[at % bytes.length] = v;
        const got = decodeOrLine(bytes.subarray(0, bytes.length - (cut % 3 === 0 ? cut % bytes.length : 0)));
        if (typeof got === "string") return;
        // what decodes holds the invariants the restore relies on
        const paths = new Set<string>();
        for (const f of got.files) {
          expect(f.path.startsWith("/") && !f.path.split("/").includes("..") && !paths.has(f.path)).toBe(true);
          paths.add(f.path);
          expect(Number.isSafeInteger(f.size) && f.size <= 64 * 1024 * 1024).toBe(true);
          expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
        }
        for (const a of [...got.args, ...got.env]) expect(a.includes("\0")).toBe(false);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("each refusal names what is wrong", () => {
    const base = { elf: new Uint8Array(4), files: new Map([["/etc/data", new Uint8Array(3)]]), args: [], env: [] };
    const bytes = encodeProcessFile(base);
    expect(() => decodeProcessFile(bytes.subarray(0, bytes.length - 1))).toThrow(/ends inside/);
    expect(() => decodeProcessFile(new Uint8Array([...bytes, 0]))).toThrow(/1 bytes follow/);
    const v1 = bytes.slice();
    v1[0] = 1;
    expect(() => decodeProcessFile(v1)).toThrow(/version 1, this wasp reads 2/);
    const dotdot = encodeProcessFile({ ...base, files: new Map([["/etc/../x", new Uint8Array(1)]]) });
    expect(() => decodeProcessFile(dotdot)).toThrow(/not absolute without \. or \.\./);
    const relative = encodeProcessFile({ ...base, files: new Map([["etc/x", new Uint8Array(1)]]) });
    expect(() => decodeProcessFile(relative)).toThrow(/not absolute/);
    // the same path twice (the encoder takes a map: the bytes are edited after)
    const two = encodeProcessFile({ ...base, files: new Map([["/a", new Uint8Array(1)], ["/b", new Uint8Array(1)]]) });
    const at = Buffer.from(two).indexOf("/b");
    two[at + 1] = "a".charCodeAt(0);
    expect(() => decodeProcessFile(two)).toThrow(/"\/a" is placed twice/);
  });
});
