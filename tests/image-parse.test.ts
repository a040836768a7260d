// The image parser reads untrusted bytes: any input gives an image or one BadImageError, never
// another exception, and what it accepts holds the invariants the loader relies on. Text and ELF
// files are refused by name (they would only fault as real-mode code); --raw takes any bytes.
// Property-based with fast-check; no VM needed.
import { describe, expect, test, beforeAll, afterAll } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_MEMORY, buildNativeImage, looksLikeText, parseImage } from "../src/image/image.ts";
import { Header, Layout } from "../src/abi/guest-abi.ts";
import { BadImageError, EXIT_STATUS } from "../src/errors.ts";
import { WASP, wasp } from "./support.ts";

/** Parses, returning the image or the BadImageError; anything else fails the property. */
function parse(bytes: Uint8Array, raw = false) {
  try {
    return parseImage(bytes, "x.bin", { raw });
  } catch (e) {
    if (e instanceof BadImageError) return e;
    throw e;
  }
}

describe("parseImage on any bytes", () => {
  test("random bytes give an image or one BadImageError line", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = parse(bytes);
        return r instanceof BadImageError ? r.message.startsWith("x.bin: ") && !r.message.includes("\n") : r.kind === "raw";
      }),
      { numRuns: runs(3000) },
    );
  });

  test("a native header with any field changed is accepted only when it makes sense", () => {
    const good = buildNativeImage([0xe6, 0xfa], { size: 256, bss: 64 });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 8, max: Header.SIZE - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 300 }), (edits, cut) => {
        const bytes = good.slice(0, Math.max(8, cut));
        for (const [at, v] of edits) if (at < bytes.length) bytes[at] = v;
        const r = parse(bytes);
        if (r instanceof BadImageError) return true;
        if (r.kind !== "native") return false; // the magic was kept: it is native or refused
        const load = BigInt(Layout.NATIVE_LOAD);
        const end = load + BigInt(bytes.length);
        const h = r.header;
        return h.loadAddr === load && h.entry >= load + BigInt(Header.SIZE) && h.entry < end && h.imageEnd >= end && h.imageEnd <= BigInt(MAX_MEMORY) && h.memWanted % 4096n === 0n && /^[\x20-\x7e]*$/.test(h.name) && (h.takes === undefined || (h.takes.args <= 6 && !(h.takes.input && h.takes.args > 0)));
      }),
      { numRuns: runs(3000) },
    );
  });

  test("--raw takes any non-empty bytes as a raw image", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 256 }), (bytes) => {
        const r = parse(bytes, true);
        return !(r instanceof BadImageError) && r.kind === "raw" && r.loadAddr === Layout.RAW_LOAD;
      }),
      { numRuns: runs(1000) },
    );
  });
});

describe("files that are plainly no image", () => {
  test("text is refused, and --raw runs it anyway", () => {
    const text = new TextEncoder().encode("# wasp\n\nA micro-hypervisor — isolating functions.\n");
    expect(() => parseImage(text, "README.md")).toThrow(/^README\.md: a text file, not a wasp image .* --raw runs any bytes as one\)$/);
    expect(parseImage(text, "README.md", { raw: true }).kind).toBe("raw");
  });

  test("an ELF executable is refused, naming what it is", () => {
    const elf = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, ...new Array(56).fill(0)]);
    expect(() => parseImage(elf, "prog")).toThrow(/^prog: an ELF executable \(a static Linux program runs with `wasp invoke PROG`; Virtine.load takes it\), not a wasp image/);
  });

  test("any string of printable text is text; real-mode code is not", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }).filter((s) => !/[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]/.test(s)), (s) => looksLikeText(new TextEncoder().encode(s))));
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(), (bytes, at) => {
      const b = bytes.slice();
      b[at % b.length] = 0; // a NUL: never text
      return !looksLikeText(b);
    }));
    // the raw guests' first instructions: mov eax, 42; hlt — and cli; lgdt...
    expect(looksLikeText(new Uint8Array([0x66, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xf4]))).toBe(false);
    expect(looksLikeText(new Uint8Array([0xfa, 0x66, 0x0f, 0x01, 0x16]))).toBe(false);
    expect(looksLikeText(new Uint8Array([0xf4]))).toBe(false); // hlt alone: a UTF-8 lead byte, but nothing follows
    expect(looksLikeText(new Uint8Array([0x41, 0xf4]), true)).toBe(true); // ...unless the file goes on
  });
});

describe("the command line", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "wasp-parse-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("wasp inspect of a text file is one line naming what it is; --raw takes it; a dynamically linked executable is a Linux program", () => {
    const readme = join(dir, "notes.md");
    writeFileSync(readme, "hello\n");
    const r = wasp(["inspect", readme]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_IMAGE);
    expect(r.stderr).toMatch(/^wasp: .*notes\.md: a text file, not a wasp image .*\n$/);
    const raw = wasp(["inspect", readme, "--raw"]);
    expect(raw.status).toBe(0);
    expect(raw.stdout).toMatch(/kind\s+raw/);
    // a dynamically linked executable is a Linux program: its interpreter and libraries named
    const elf = wasp(["inspect", "/bin/true"]);
    expect(elf.status).toBe(0);
    expect(elf.stdout).toMatch(/kind\s+linux \(dynamically linked x86-64 ELF/);
    expect(elf.stdout).toMatch(/interpreter\s+\/lib.*\/ld-linux-x86-64\.so\.2\nneeds\s+.*libc\.so\.6/);
  });

  test("a stray file does not shadow a built-in guest: a bare name is the built-in, ./name the file", () => {
    writeFileSync(join(dir, "fib"), "not a guest\n");
    const builtIn = Bun.spawnSync([WASP, "inspect", "fib"], { cwd: dir });
    expect(builtIn.exitCode).toBe(0);
    expect(builtIn.stdout.toString()).toMatch(/kind\s+native/);
    const file = Bun.spawnSync([WASP, "inspect", "./fib"], { cwd: dir });
    expect(file.exitCode).toBe(EXIT_STATUS.WASP_BAD_IMAGE);
    expect(file.stderr.toString()).toMatch(/^wasp: fib: a text file/);
  });
});
