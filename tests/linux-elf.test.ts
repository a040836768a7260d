// Linux executables (issue 13, the parts that need no VM): the ELF parser is untrusted-input code —
// any bytes give a checked executable or one BadImageError — and the initial stack is laid out as
// Linux lays it (read back here pointer by pointer).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runs } from "./fuzz.ts";
import { isElf, parseElf, type ElfExecutable } from "../src/linux/elf.ts";
import { resolveDynamic } from "../src/linux/dynamic.ts";
import { AT, MAX_ARG_BYTES, initialStack } from "../src/linux/stack.ts";
import { BadArgsError, BadImageError } from "../src/errors.ts";
import { slow, zigPath } from "./support.ts";

const LIMIT = 0x40000000;
let dir: string;
let hello: Uint8Array; // a real static executable, built with the bundled zig cc
let pie: Uint8Array;
let dynamic: Uint8Array; // a dynamically linked one (glibc's interpreter, libc.so.6, a search path)
let library: Uint8Array; // a shared library

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-elf-"));
  writeFileSync(join(dir, "hello.c"), `#include <stdio.h>\nint main(int argc, char **argv) { printf("hello %d\\n", argc); return 3; }\n`);
  for (const [out, extra] of [["hello", []], ["pie", ["-fPIE", "-static-pie"]]] as const) {
    const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-static", "-O2", ...extra, "-o", join(dir, out), join(dir, "hello.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
  }
  hello = new Uint8Array(readFileSync(join(dir, "hello")));
  pie = new Uint8Array(readFileSync(join(dir, "pie")));
  for (const [out, extra] of [["dynamic", ["-Wl,-rpath,$ORIGIN/../lib:/opt/x"]], ["lib.so", ["-shared", "-fPIC"]]] as const) {
    const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-gnu", "-O2", ...extra, "-o", join(dir, out), join(dir, "hello.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
  }
  dynamic = new Uint8Array(readFileSync(join(dir, "dynamic")));
  library = new Uint8Array(readFileSync(join(dir, "lib.so")));
}, slow(300_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function parse(bytes: Uint8Array): ElfExecutable | BadImageError {
  try {
    return parseElf(bytes, "prog", LIMIT);
  } catch (e) {
    if (e instanceof BadImageError) return e;
    throw e;
  }
}

describe("parseElf", () => {
  test("a dynamically linked program: its interpreter, the libraries it needs, its search path; a library", () => {
    const d = parseElf(dynamic, "dynamic", LIMIT);
    expect(d.interp).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(d.needed).toContain("libc.so.6");
    expect(d.runpath).toEqual(["$ORIGIN/../lib", "/opt/x"]);
    const s = parseElf(hello, "hello", LIMIT);
    expect([s.interp, s.needed, s.runpath]).toEqual([undefined, [], []]);
    // a library: no entry to check, position-independent; not a program
    expect(parseElf(library, "lib.so", LIMIT, { library: true }).interp).toBeUndefined();
    expect(() => parseElf(hello, "hello", LIMIT, { library: true })).toThrow(/hello: ELF type 2: a shared library is position-independent \(ET_DYN\)/);
  });

  test("a static musl executable: its segments, entry and program headers", () => {
    const e = parseElf(hello, "hello", LIMIT);
    expect(e.pie).toBe(false);
    expect(e.segments.some((s) => s.exec && !s.write)).toBe(true); // text: not writable
    expect(e.segments.some((s) => s.write && !s.exec)).toBe(true); // data: not executable
    expect(e.segments.some((s) => s.exec && e.entry >= s.vaddr && e.entry < s.vaddr + s.memsz)).toBe(true);
    expect(e.phent).toBe(56);
    expect(e.phnum).toBeGreaterThan(0);
    expect(e.phdr).toBeGreaterThanOrEqual(e.low);
    expect(e.low % 4096).toBe(0);
    expect(e.high).toBeGreaterThan(e.low);
  });

  test("a static-PIE is an executable too, loaded where wasp chooses", () => {
    const e = parseElf(pie, "pie", LIMIT);
    expect(e.pie).toBe(true);
  });

  test("what is refused, each by name", () => {
    const edit = (f: (b: Uint8Array, dv: DataView) => void) => {
      const b = hello.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const why = (b: Uint8Array) => (parse(b) as BadImageError).message;
    expect(why(hello.slice(0, 40))).toMatch(/truncated/);
    expect(why(edit((b) => (b[4] = 1)))).toMatch(/32-bit ELF file/);
    expect(why(edit((b) => (b[5] = 2)))).toMatch(/big-endian/);
    expect(why(edit((_, dv) => dv.setUint16(18, 183, true)))).toMatch(/AArch64/);
    expect(why(edit((_, dv) => dv.setUint16(16, 1, true)))).toMatch(/not an executable/);
    expect(why(edit((_, dv) => dv.setBigUint64(24, 0x10n, true)))).toMatch(/entry point 0x10 is not in an executable segment/);
    expect(why(edit((_, dv) => dv.setBigUint64(32, 2n ** 60n, true)))).toMatch(/program header offset .* is out of range|past the end/);
    // the first program header made a PT_INTERP: the bytes it points at are no path
    const phoff = Number(new DataView(hello.buffer).getBigUint64(32, true));
    expect(why(edit((_, dv) => dv.setUint32(phoff, 3, true)))).toMatch(/the interpreter's path \(PT_INTERP\) (holds bytes that are not printable ASCII|is not NUL-terminated|is empty|is \d+ bytes)/);
  });

  test("any bytes give a checked executable or one BadImageError; what is accepted holds the loader's invariants", () => {
    const check = (b: Uint8Array) => {
      const r = parse(b);
      if (r instanceof BadImageError) return r.message.startsWith("prog: ") && !r.message.includes("\n");
      return (
        r.segments.length > 0 &&
        r.segments.every((s) => s.filesz <= s.memsz && s.offset + s.filesz <= b.length && s.vaddr + s.memsz <= LIMIT) &&
        r.segments.every((s, i) => r.segments.every((o, j) => i === j || s.vaddr + s.memsz <= o.vaddr || o.vaddr + o.memsz <= s.vaddr)) &&
        r.segments.some((s) => s.exec && r.entry >= s.vaddr && r.entry < s.vaddr + s.memsz)
      );
    };
    // random bytes behind an ELF magic, and a real executable with random bytes changed
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (tail) => check(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, ...tail]))), { numRuns: runs(2000) });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: 64 + 56 * 12 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const b = hello.slice();
        for (const [at, v] of edits) b[at] = v;
        return check(b);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("isElf knows ELF's magic", () => {
    expect(isElf(hello)).toBe(true);
    expect(isElf(new Uint8Array([0x7f, 0x45, 0x4c]))).toBe(false);
  });
});

/** Reads a NUL-terminated string at guest address `p` of a stack whose bytes start at `rsp`. */
const cstring = (bytes: Uint8Array, rsp: number, p: number) => {
  const at = p - rsp;
  return new TextDecoder().decode(bytes.subarray(at, bytes.indexOf(0, at)));
};

describe("initialStack", () => {
  const random = new Uint8Array(16).map((_, i) => i + 1);
  const layout = (argv: string[], envp: string[]) => {
    const top = 0x7ff000;
    const { rsp, bytes } = initialStack(top, { argv, envp, auxv: [[AT.PAGESZ, 4096n], [AT.ENTRY, 0x401000n]], random, execfn: "/prog" });
    const dv = new DataView(bytes.buffer);
    const word = (i: number) => dv.getBigUint64(i * 8, true);
    let i = 0;
    const argc = Number(word(i++));
    const args = Array.from({ length: argc }, () => cstring(bytes, rsp, Number(word(i++))));
    expect(word(i++)).toBe(0n);
    const env: string[] = [];
    for (let p = word(i++); p !== 0n; p = word(i++)) env.push(cstring(bytes, rsp, Number(p)));
    const aux = new Map<number, bigint>();
    for (let t = Number(word(i++)); ; t = Number(word(i++))) {
      const v = word(i++);
      if (t === AT.NULL) break;
      aux.set(t, v);
    }
    return { rsp, top, bytes, argc, args, env, aux };
  };

  test("argc, argv, envp and the auxiliary vector, as _start reads them; RSP 16-byte aligned", () => {
    const s = layout(["prog", "1", "two words", "ünïcode"], ["HOME=/", "LANG=C"]);
    expect(s.rsp % 16).toBe(0);
    expect(s.rsp + s.bytes.length).toBe(s.top);
    expect(s.argc).toBe(4);
    expect(s.args).toEqual(["prog", "1", "two words", "ünïcode"]);
    expect(s.env).toEqual(["HOME=/", "LANG=C"]);
    expect(s.aux.get(AT.PAGESZ)).toBe(4096n);
    expect(s.aux.get(AT.ENTRY)).toBe(0x401000n);
    const r = Number(s.aux.get(AT.RANDOM)) - s.rsp;
    expect(s.bytes.subarray(r, r + 16)).toEqual(random);
    expect(cstring(s.bytes, s.rsp, Number(s.aux.get(AT.EXECFN)))).toBe("/prog");
    expect(cstring(s.bytes, s.rsp, Number(s.aux.get(AT.PLATFORM)))).toBe("x86_64");
  });

  test("any arguments and environment read back exactly", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 40 }).filter((x) => !x.includes("\0"));
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 8 }), fc.array(text, { maxLength: 8 }), (argv, envp) => {
        const s = layout(argv, envp);
        return s.rsp % 16 === 0 && JSON.stringify(s.args) === JSON.stringify(argv) && JSON.stringify(s.env) === JSON.stringify(envp);
      }),
      { numRuns: runs(500) },
    );
  });

  test("a NUL in a string, or more than the limit, is a BadArgsError", () => {
    expect(() => layout(["prog", "a\0b"], [])).toThrow(new BadArgsError("argument 1 holds a NUL byte, which a C string cannot"));
    expect(() => layout(["prog", "x".repeat(MAX_ARG_BYTES)], [])).toThrow(BadArgsError);
  });
});

describe("resolveDynamic", () => {
  // a host made of a few files: the static-PIE stands in for the interpreter, the library for libc
  const host = (files: Record<string, Uint8Array | string>) => ({ read: (p: string) => (typeof files[p] === "string" ? new TextEncoder().encode(files[p] as string) : (files[p] as Uint8Array | undefined)) });

  test("the interpreter, and each library at the guest path its loader opens it by", () => {
    const d = parseElf(dynamic, "dynamic", LIMIT);
    const found = resolveDynamic(d, "/srv/app/bin/dynamic", host({ "/lib64/ld-linux-x86-64.so.2": pie, "/usr/lib/x86_64-linux-gnu/libc.so.6": library }));
    expect(found.interp.path).toBe("/lib64/ld-linux-x86-64.so.2");
    expect([...found.libraries.keys()]).toEqual(["/usr/lib/x86_64-linux-gnu/libc.so.6"]);
    // $ORIGIN/../lib first: the program's own directory on the host, "/" in the guest
    const own = resolveDynamic(d, "/srv/app/bin/dynamic", host({ "/lib64/ld-linux-x86-64.so.2": pie, "/srv/app/lib/libc.so.6": library, "/lib/x86_64-linux-gnu/libc.so.6": library }));
    expect([...own.libraries.keys()]).toEqual(["/lib/libc.so.6"]);
  });

  test("what is missing or not a library is a BadImageError naming it", () => {
    const d = parseElf(dynamic, "dynamic", LIMIT);
    expect(() => resolveDynamic(d, "/a/dynamic", host({}))).toThrow(/^dynamic: its interpreter \/lib64\/ld-linux-x86-64\.so\.2 is not on this machine$/);
    expect(() => resolveDynamic(d, "/a/dynamic", host({ "/lib64/ld-linux-x86-64.so.2": hello }))).toThrow(/is not a position-independent object without an interpreter of its own/);
    expect(() => resolveDynamic(d, "/a/dynamic", host({ "/lib64/ld-linux-x86-64.so.2": pie }))).toThrow(/^dynamic: it needs the library libc\.so\.6, found in none of \$ORIGIN\/\.\.\/lib, \/opt\/x, \/lib\/x86_64-linux-gnu, \/usr\/lib\/x86_64-linux-gnu, \/lib, \/usr\/lib$/);
    expect(() => resolveDynamic(d, "/a/dynamic", host({ "/lib64/ld-linux-x86-64.so.2": pie, "/lib/libc.so.6": "not ELF" }))).toThrow(/^dynamic: its library \/lib\/libc\.so\.6: libc\.so\.6: not an ELF file$/);
  });
});
