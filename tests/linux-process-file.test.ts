// A Linux program's process section (src/linux/process-file.ts) is read from snapshot files: untrusted
// bytes. Property-based, without a VM: what is written reads back the same; any bytes, and any
// change to a valid section, give a decoded section or one ProcessSectionError line, never another
// exception; and what decodes holds the invariants the restore relies on (the files' paths and
// sizes, the granted directories' guest paths, the opened files' paths under them, the protected
// runs sorted and apart). Sections of versions 2, 3 (no directories) and 4 (no protections) are
// still read.
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
    protections: fc.array(fc.record({ gap: fc.nat({ max: 64 }), pages: fc.integer({ min: 1, max: 600 }), prot: fc.integer({ min: 0, max: 7 }) }), { maxLength: 6 }).map((runs) => {
      // sorted and apart: each starts some pages after the one before ends
      let at = 0x200000;
      return runs.map(({ gap, pages, prot }) => {
        const run = { addr: at + gap * 4096, pages, prot };
        at = run.addr + pages * 4096;
        return run;
      });
    }),
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
  const v5 = encodeProcessFile({ ...s, dirs: [], opened: [], protections: [] });
  // the three empty counts at the end go; for version 2, the interpreter's length after the executable
  let bytes = v5.subarray(0, v5.length - 12);
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
        expect(back.protections).toEqual(s.protections);
      }),
      { numRuns: runs(500) },
    );
  });

  test("sections of version 4 read back with their directories and no protections", () => {
    fc.assert(
      fc.property(sectionArb, (s) => {
        const v5 = encodeProcessFile({ ...s, protections: [] });
        const v4 = v5.slice(0, v5.length - 4);
        new DataView(v4.buffer).setUint32(0, 4, true);
        const back = decodeProcessFile(v4);
        expect(back.dirs).toEqual([...s.dirs].sort());
        expect(back.opened).toEqual(s.opened);
        expect(back.protections).toEqual([]);
      }),
      { numRuns: runs(200) },
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
        expect(back.protections).toEqual([]);
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
        checkRuns(got);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("any change to a section's directories and opened table (the bytes after its environment) decodes or is one ProcessSectionError line", () => {
    fc.assert(
      fc.property(sectionArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), fc.boolean(), (s, edits, cut, grow) => {
        const base = encodeProcessFile({ ...s, dirs: [], opened: [], protections: [] }).length - 12;
        let bytes = encodeProcessFile(s);
        // edits land in the last part only, where the counts and paths are: a count made large,
        // a byte of a path changed (a "/" or "." made: un-normalized, or out of its grant)
        for (const [at, v] of edits) bytes[base + (at % (bytes.length - base))] = [0x2f, 0x2e, 0xff, 0x00, v][at % 5];
        if (grow) bytes = new Uint8Array([...bytes, ...new Uint8Array(cut % 40)]);
        else bytes = bytes.subarray(0, bytes.length - (cut % (bytes.length - base + 1)));
        const got = decodeOrLine(bytes);
        if (typeof got !== "string") {
          checkDirs(got);
          checkRuns(got);
        }
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
    expect(() => decodeProcessFile(v1)).toThrow(/version 1, this wasp reads 2 to 5/);
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
    dv.setUint32(empty.length - 8, 2, true);
    expect(() => decodeProcessFile(empty)).toThrow(/2 opened files cannot fit in the 4 bytes left/);
    dv.setUint32(empty.length - 8, MAX_OPENED + 1, true);
    expect(() => decodeProcessFile(empty)).toThrow(new RegExp(`${MAX_OPENED + 1} opened files, more than ${MAX_OPENED}`));
    const dirCount = encodeProcessSection({ ...base, dirs: [], opened: [] });
    new DataView(dirCount.buffer).setUint32(dirCount.length - 12, 0xffffffff, true);
    expect(() => decodeProcessFile(dirCount)).toThrow(/4294967295 granted directories, more than/);
    const v6 = encodeProcessSection({ ...base });
    v6[0] = 6;
    expect(() => decodeProcessFile(v6)).toThrow(/version 6, this wasp reads 2 to 5/);
  });

  test("each refusal of the protected runs names what is wrong", () => {
    const base = { elf: new Uint8Array(4), files: [], args: [], env: [] };
    const refused = (protections: { addr: number; pages: number; prot: number }[], why: RegExp) => {
      const bytes = encodeProcessSection({ ...base, protections });
      expect(() => decodeProcessFile(bytes)).toThrow(ProcessSectionError);
      expect(() => decodeProcessFile(bytes)).toThrow(why);
    };
    expect(decodeProcessFile(encodeProcessSection({ ...base, protections: [{ addr: 0x400000, pages: 3, prot: 5 }] })).protections).toEqual([{ addr: 0x400000, pages: 3, prot: 5 }]);
    refused([{ addr: 0x400001, pages: 1, prot: 1 }], /not whole pages/);
    refused([{ addr: 0x400000, pages: 0, prot: 1 }], /not whole pages/);
    refused([{ addr: 0x400000, pages: 1, prot: 8 }], /PROT bits \(8\)/);
    refused([{ addr: 0x400000, pages: 2, prot: 1 }, { addr: 0x401000, pages: 1, prot: 5 }], /out of order or overlaps/);
    refused([{ addr: 0x500000, pages: 1, prot: 1 }, { addr: 0x400000, pages: 1, prot: 5 }], /out of order or overlaps/);
    refused([{ addr: 2 ** 32 - 4096, pages: 2, prot: 1 }], /past any guest memory/);
    const count = encodeProcessSection({ ...base });
    new DataView(count.buffer).setUint32(count.length - 4, 3, true);
    expect(() => decodeProcessFile(count)).toThrow(/3 runs of protections cannot fit in the 0 bytes left/);
    new DataView(count.buffer).setUint32(count.length - 4, 0xffffffff, true);
    expect(() => decodeProcessFile(count)).toThrow(/4294967295 runs of protections, more than/);
  });
});

/** What a decoded section's protected runs must be for checkProtections to judge them page by page. */
function checkRuns(got: ProcessFile): void {
  let end = 0;
  for (const r of got.protections) {
    expect(r.addr % 4096 === 0 && r.addr >= end && r.pages >= 1 && r.prot >= 0 && r.prot <= 7).toBe(true);
    end = r.addr + r.pages * 4096;
    expect(end).toBeLessThanOrEqual(2 ** 32);
  }
}

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
