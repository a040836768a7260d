// A Linux program's process section (src/linux/process-file.ts) is read from snapshot files: untrusted
// bytes. Property-based, without a VM: what is written reads back the same; any bytes, and any
// change to a valid section, give a decoded section or one ProcessSectionError line, never another
// exception; and what decodes holds the invariants the restore relies on (the files' paths and
// sizes, the granted directories' guest paths, the opened files' paths under them). Sections of
// versions 2 and 3 (no directories) are still read.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { decodeProcessFile, encodeProcessFile, encodeProcessSection, ProcessSectionError, sha256Hex, underDir, type ProcessFile } from "../src/linux/process-file.ts";
import { MAX_OPENED, normalizeGuest } from "../src/linux/dirs.ts";

const partArb = fc.stringMatching(/^[a-z0-9_-]{1,8}$/);
const pathArb = fc.array(partArb, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);
const hashArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));

/** Granted directories (maybe "/"), and a table of entries under them: a directory itself, or a path below one. */
const dirsArb = fc.uniqueArray(fc.oneof({ weight: 1, arbitrary: fc.constant("/") }, { weight: 6, arbitrary: pathArb }), { maxLength: 4 }).chain((dirs) =>
  fc.record({
    dirs: fc.constant(dirs),
    opened:
      dirs.length === 0
        ? fc.constant<{ path: string; sha256: string }[]>([])
        : fc.uniqueArray(
            fc.record({
              path: fc.tuple(fc.constantFrom(...dirs), fc.array(partArb, { maxLength: 3 })).map(([d, rest]) => normalizeGuest(`${d}/${rest.join("/")}`)),
              sha256: hashArb,
            }),
            { selector: (e) => e.path, maxLength: 6 },
          ),
  }),
);

const sectionArb = fc
  .record({
    elf: fc.uint8Array({ maxLength: 300 }),
    files: fc.uniqueArray(fc.tuple(pathArb, fc.uint8Array({ maxLength: 64 })), { selector: (f) => f[0], maxLength: 6 }).map((l) => new Map(l)),
    args: fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")), { maxLength: 5 }),
    env: fc.array(fc.string().filter((s) => !s.includes("\0")), { maxLength: 5 }),
    granted: dirsArb,
  })
  .map(({ granted, ...rest }) => ({ ...rest, ...granted }));

function decodeOrLine(bytes: Uint8Array): ProcessFile | string {
  try {
    return decodeProcessFile(bytes);
  } catch (e) {
    if (e instanceof ProcessSectionError && !e.message.includes("\n")) return e.message;
    throw e;
  }
}

/** The section of `s` as version 3 wrote it (no directories) or, `v2`, as version 2 did (no interpreter field either). */
function olderSection(s: { elf: Uint8Array; files: ReadonlyMap<string, Uint8Array>; args: readonly string[]; env: readonly string[] }, v2: boolean): Uint8Array {
  const v4 = encodeProcessFile({ ...s, dirs: [], opened: [] });
  // the two empty counts at the end go; for version 2, the interpreter's length after the executable
  let bytes = v4.subarray(0, v4.length - 8);
  if (v2) {
    const at = 8 + s.elf.length;
    bytes = new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + 4)]);
  } else bytes = bytes.slice();
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(0, v2 ? 2 : 3, true);
  return bytes;
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
        expect(back.dirs).toEqual([...s.dirs].sort());
        expect(back.opened).toEqual(s.opened);
      }),
      { numRuns: runs(500) },
    );
  });

  test("sections of versions 3 and 2 read back with no directories", () => {
    fc.assert(
      fc.property(sectionArb, fc.boolean(), (s, v2) => {
        const back = decodeProcessFile(olderSection(s, v2));
        expect([...back.elf]).toEqual([...s.elf]);
        expect(back.interp).toBeUndefined();
        expect(back.files.map((f) => f.path)).toEqual([...s.files.keys()]);
        expect(back.args).toEqual(s.args);
        expect(back.env).toEqual(s.env);
        expect(back.dirs).toEqual([]);
        expect(back.opened).toEqual([]);
      }),
      { numRuns: runs(300) },
    );
  });

  test("any bytes, and any change to a valid section, decode or are one ProcessSectionError line", () => {
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
        checkDirs(got);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("any change to a section's directories and opened table (the bytes after its environment) decodes or is one ProcessSectionError line", () => {
    fc.assert(
      fc.property(sectionArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), fc.boolean(), (s, edits, cut, grow) => {
        const base = encodeProcessFile({ ...s, dirs: [], opened: [] }).length - 8;
        let bytes = encodeProcessFile(s);
        // edits land in the last part only, where the counts and paths are: a count made large,
        // a byte of a path changed (a "/" or "." made: un-normalized, or out of its grant)
        for (const [at, v] of edits) bytes[base + (at % (bytes.length - base))] = [0x2f, 0x2e, 0xff, 0x00, v][at % 5];
        if (grow) bytes = new Uint8Array([...bytes, ...new Uint8Array(cut % 40)]);
        else bytes = bytes.subarray(0, bytes.length - (cut % (bytes.length - base + 1)));
        const got = decodeOrLine(bytes);
        if (typeof got !== "string") checkDirs(got);
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
    expect(() => decodeProcessFile(v1)).toThrow(/version 1, this wasp reads 2 to 4/);
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

  test("each refusal of the directories and the opened table names what is wrong", () => {
    const base = { elf: new Uint8Array(4), files: [], args: [], env: [] };
    const h = "ab".repeat(32);
    const ok = encodeProcessSection({ ...base, dirs: ["/usr/lib", "/data"], opened: [{ path: "/data/x", sha256: h }, { path: "/usr/lib", sha256: h }] });
    expect(decodeProcessFile(ok).dirs).toEqual(["/data", "/usr/lib"]);
    const refused = (dirs: string[], opened: { path: string; sha256: string }[], why: RegExp) => {
      const bytes = encodeProcessSection({ ...base, dirs, opened });
      // written unsorted on purpose: the encoder sorts, so the order is forged after
      expect(() => decodeProcessFile(bytes)).toThrow(ProcessSectionError);
      expect(() => decodeProcessFile(bytes)).toThrow(why);
    };
    for (const bad of ["data", "/data/", "/a//b", "/a/./b", "/a/../b", "/a\0b", "/.", ""]) refused([bad], [], /is not absolute and normalized/);
    refused(["/a", "/a"], [], /"\/a" is named twice/);
    refused(["/a"], [{ path: "/ab", sha256: h }], /"\/ab" is under none of the granted directories/);
    refused(["/a"], [{ path: "/", sha256: h }], /under none/);
    refused(["/a"], [{ path: "/a/x", sha256: h }, { path: "/a/x", sha256: h }], /"\/a\/x" is in the table twice/);
    refused(["/a"], [{ path: "/a/../etc/passwd", sha256: h }], /not absolute and normalized/);
    // "/" grants every path
    expect(decodeProcessFile(encodeProcessSection({ ...base, dirs: ["/"], opened: [{ path: "/etc/x", sha256: h }] })).opened[0].path).toBe("/etc/x");
    // out of order: the encoder sorts, so two directories swapped in the bytes
    const two = encodeProcessSection({ ...base, dirs: ["/a", "/b"], opened: [] });
    const at = Buffer.from(two).indexOf("/a");
    two[at + 1] = "b".charCodeAt(0);
    two[at + 4 + 2 + 1] = "a".charCodeAt(0);
    expect(() => decodeProcessFile(two)).toThrow(/"\/a" is out of order/);
    // counts held to the bytes that hold them, and to MAX_OPENED
    const empty = encodeProcessSection({ ...base, dirs: ["/a"], opened: [] });
    const dv = new DataView(empty.buffer);
    dv.setUint32(empty.length - 4, 2, true);
    expect(() => decodeProcessFile(empty)).toThrow(/2 opened files cannot fit in the 0 bytes left/);
    dv.setUint32(empty.length - 4, MAX_OPENED + 1, true);
    expect(() => decodeProcessFile(empty)).toThrow(new RegExp(`${MAX_OPENED + 1} opened files, more than ${MAX_OPENED}`));
    const dirCount = encodeProcessSection({ ...base, dirs: [], opened: [] });
    new DataView(dirCount.buffer).setUint32(dirCount.length - 8, 0xffffffff, true);
    expect(() => decodeProcessFile(dirCount)).toThrow(/4294967295 granted directories, more than/);
    const v5 = encodeProcessSection({ ...base });
    v5[0] = 5;
    expect(() => decodeProcessFile(v5)).toThrow(/version 5, this wasp reads 2 to 4/);
  });
});

/** What a decoded section's directories and table must be for the restore (GrantedDirs) to rely on them. */
function checkDirs(got: ProcessFile): void {
  expect(got.dirs.length).toBeLessThanOrEqual(4096);
  got.dirs.forEach((d, i) => {
    expect(d.startsWith("/") && !d.includes("\0") && normalizeGuest(d) === d).toBe(true);
    if (i > 0) expect(got.dirs[i - 1] < d).toBe(true);
  });
  expect(got.opened.length).toBeLessThanOrEqual(MAX_OPENED);
  const seen = new Set<string>();
  for (const e of got.opened) {
    expect(normalizeGuest(e.path) === e.path && !e.path.includes("\0")).toBe(true);
    expect(got.dirs.some((d) => underDir(e.path, d))).toBe(true);
    expect(seen.has(e.path)).toBe(false);
    seen.add(e.path);
    expect(e.sha256).toMatch(/^[0-9a-f]{64}$/);
  }
}
