// A Linux guest's address space (src/linux/address-space.ts), walked through the host's checked
// access exactly as a system call's pointers will be: text not writable, data and heap writable,
// the host's pages and the stack's guard out of reach, and NX on everything that is not code —
// for real executables built with the bundled zig cc and for random segment layouts. No VM needed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runs } from "./fuzz.ts";
import { slow, zigPath } from "./support.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { BadArgsError, BadImageError, MemoryFaultError } from "../src/errors.ts";
import { GuestAccess } from "../src/memory/guest-access.ts";
import { GuestMemory } from "../src/memory/guest-memory.ts";
import { LINUX_LOW, PIE_BASE, linuxAccessRules, linuxPageTables, planLinux, segmentPieces, type LinuxLayout } from "../src/linux/address-space.ts";
import { parseElf, type ElfExecutable, type ElfSegment } from "../src/linux/elf.ts";
import { LINUX_ENTRY, LINUX_ENTRY_STACK } from "../src/linux/entry.ts";

const MIB = 1024 * 1024;
const PAGE = 4096;
let dir: string;
let hello: ElfExecutable;
let pie: ElfExecutable;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-as-"));
  writeFileSync(join(dir, "hello.c"), `#include <stdio.h>\nstatic int counter = 5;\nconst char banner[] = "hello";\nint main(void) { printf("%s %d\\n", banner, counter++); return 0; }\n`);
  for (const [out, extra] of [["hello", []], ["pie", ["-fPIE", "-static-pie"]]] as const) {
    const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-static", "-O2", ...extra, "-o", join(dir, out), join(dir, "hello.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
  }
  hello = parseElf(new Uint8Array(readFileSync(join(dir, "hello"))), "hello", Layout.MAPPED);
  pie = parseElf(new Uint8Array(readFileSync(join(dir, "pie"))), "pie", Layout.MAPPED);
}, slow(300_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The guest's memory with its tables and segments written in, and the checked access over it. */
function load(elf: ElfExecutable, layout: LinuxLayout) {
  const mem = new GuestMemory(layout.memory);
  for (const [at, bytes] of linuxPageTables(elf, layout)) mem.bytes.set(bytes, at);
  for (const [at, bytes] of segmentPieces(elf, layout)) mem.bytes.set(bytes, at);
  const guest = new GuestAccess(mem, linuxAccessRules());
  return { mem, guest };
}

const can = (fn: () => unknown) => {
  try {
    fn();
    return true;
  } catch (e) {
    if (e instanceof MemoryFaultError) return false;
    throw e;
  }
};

/** The leaf entry mapping `addr`, walked here independently of GuestAccess: its NX bit (or undefined: not present). */
function nx(mem: GuestMemory, addr: number): boolean | undefined {
  const dv = new DataView(mem.bytes.buffer, mem.bytes.byteOffset);
  let table: number = Layout.PML4;
  for (const shift of [39, 30, 21, 12]) {
    const e = dv.getBigUint64(table + Math.floor(addr / 2 ** shift) % 512 * 8, true);
    if ((e & 1n) === 0n) return undefined;
    if (shift === 12 || (shift === 21 && (e & 0x80n) !== 0n)) return (e >> 63n) === 1n;
    table = Number(e & 0x000ffffffffff000n);
  }
  return undefined;
}

/** What the segments say of a page, computed here from the program headers alone. */
function expected(elf: ElfExecutable, layout: LinuxLayout, addr: number): "absent" | "ro" | "rw" | "host" {
  if (addr >= layout.memory || addr < LINUX_LOW) return addr > 0 && addr < Layout.HOST_END ? "host" : "absent";
  const segs = elf.segments.filter((s) => addr + PAGE > s.vaddr + layout.bias - ((s.vaddr + layout.bias) % PAGE) && addr < s.vaddr + layout.bias + s.memsz);
  if (segs.length > 0) return segs.some((s) => s.write) ? "rw" : "ro";
  if (addr >= layout.guard[0] && addr < layout.guard[1]) return "absent";
  // wasp's pages in the program's memory: the sites' stubs, the stdin window, the placed files read-only
  if (addr >= layout.io.sites && addr < layout.io.end) return "ro";
  return addr >= layout.high ? "rw" : "absent";
}

describe("a static executable's address space", () => {
  for (const which of ["hello", "pie"] as const) {
    test(`${which}: every page of the memory as the program headers say, through the checked access`, () => {
      const elf = which === "hello" ? hello : pie;
      const layout = planLinux(elf, 16 * MIB);
      expect(layout.bias).toBe(which === "pie" ? PIE_BASE : 0);
      const { mem, guest } = load(elf, layout);
      const counts = { absent: 0, ro: 0, rw: 0, host: 0 };
      for (let addr = 0; addr < layout.memory + 4 * MIB; addr += PAGE) {
        const want = expected(elf, layout, addr);
        counts[want]++;
        const read = can(() => guest.read(addr, 8, "x"));
        const write = can(() => guest.check(addr, 8, "write", "x"));
        expect([addr, read, write]).toEqual([addr, want === "ro" || want === "rw", want === "rw"]);
      }
      expect(counts.ro).toBeGreaterThan(0);
      expect(counts.rw).toBeGreaterThan(0);
      // NX: code executable, nothing else
      for (const s of elf.segments) {
        const at = s.vaddr + layout.bias;
        expect([at, nx(mem, at)]).toEqual([at, !s.exec]);
      }
      for (const at of [layout.regions.brkStart, layout.regions.mmapStart, layout.stack[0], layout.memory - PAGE]) expect([at, nx(mem, at)]).toEqual([at, true]);
      expect(nx(mem, layout.guard[0])).toBeUndefined();
      // the host's pages: only code executable (the exception handlers in the IDT's page, the system-call entry, the trampoline)
      for (const [at, exec] of [[Layout.IDT, true], [LINUX_ENTRY, true], [Layout.TRAMPOLINE, true], [Layout.PML4, false], [Layout.GDT, false], [Layout.TSS, false], [LINUX_ENTRY_STACK - 8, false]] as const) {
        expect([at, nx(mem, at - (at % PAGE))]).toEqual([at, !exec]);
      }
      // the file's bytes are where the program expects them: the string constant and the entry's code
      const text = new TextDecoder().decode(mem.bytes.subarray(layout.low, layout.high));
      expect(text).toContain("hello");
      mem.close();
    });
  }

  test("the regions: break after the program, mappings above it, a guard under the stack at the top of memory", () => {
    const layout = planLinux(hello, 32 * MIB, 2 * MIB);
    expect(layout.regions.brkStart).toBe(hello.high);
    expect(layout.regions.brkEnd).toBe(layout.regions.mmapStart);
    // wasp's pages (the process block, the windows, the placed files) between the mappings and the guard
    expect(layout.regions.mmapEnd).toBe(layout.io.start);
    expect(layout.io.end).toBe(layout.guard[0]);
    expect(layout.guard[1]).toBe(layout.stack[0]);
    expect(layout.stack).toEqual([30 * MIB, 32 * MIB]);
    expect(layout.regions.brkEnd - layout.regions.brkStart).toBeGreaterThan(10 * MIB);
    // the default stack: 1 MiB, or a quarter of a small memory
    expect(planLinux(hello, 16 * MIB).stack).toEqual([15 * MIB, 16 * MIB]);
    const small = planLinux(hello, 3.5 * MIB);
    expect(small.stack[1] - small.stack[0]).toBe(896 * 1024);
  });

  test("a program that does not fit, sits on the host's pages or asks for a bad stack is refused by name", () => {
    expect(() => planLinux(hello, 2 * MIB)).toThrow(BadImageError);
    expect(() => planLinux(hello, 2 * MIB)).toThrow(/^hello: it needs \d+ MiB of guest memory/);
    const low = { ...hello, low: 0x10000, high: 0x20000, segments: [{ ...hello.segments[0], vaddr: 0x10000, memsz: 0x10000 }] };
    expect(() => planLinux(low, 16 * MIB)).toThrow(/its segments start at 0x10000, below 0x200000 where wasp keeps its own pages/);
    expect(() => planLinux(hello, 16 * MIB, 1000)).toThrow(BadArgsError);
    expect(() => planLinux(hello, 16 * MIB, 15 * MIB)).toThrow(/needs \d+ MiB/);
    expect(() => planLinux(hello, 16 * MIB + 1)).toThrow(BadArgsError);
  });

  test("random segment layouts: every page's permission matches the program headers, and the tables fit", () => {
    const segment = fc.record({
      page: fc.integer({ min: 0, max: 2000 }),
      pages: fc.integer({ min: 1, max: 600 }),
      skew: fc.integer({ min: 0, max: PAGE - 1 }),
      write: fc.boolean(),
      exec: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 200 }), (specs, probe) => {
        // lay the segments out one after another (no overlap), as a linker would
        const segments: ElfSegment[] = [];
        let at = LINUX_LOW;
        for (const s of specs) {
          at += s.page * PAGE;
          const vaddr = at + s.skew;
          const memsz = s.pages * PAGE - s.skew;
          segments.push({ vaddr, memsz, filesz: 0, offset: s.skew, read: true, write: s.write, exec: s.exec });
          at = vaddr + memsz;
        }
        const high = Math.ceil(at / PAGE) * PAGE;
        const elf: ElfExecutable = { name: "random", bytes: new Uint8Array(0), pie: false, entry: segments[0].vaddr, segments, phdr: 0, phent: 56, phnum: segments.length, tls: undefined, needed: [], runpath: [], low: LINUX_LOW + specs[0].page * PAGE, high };
        const memory = Math.ceil((high + 4 * MIB) / (2 * MIB)) * 2 * MIB;
        const layout = planLinux(elf, memory);
        const { mem, guest } = load(elf, layout);
        try {
          // a sample of pages: every segment's first and last, the boundaries, and pseudo-random ones
          const pages = new Set<number>([layout.guard[0], layout.guard[1] - PAGE, layout.stack[0], layout.memory - PAGE, layout.memory, LINUX_LOW - PAGE]);
          for (const s of segments) for (const a of [s.vaddr, s.vaddr + s.memsz - 1, s.vaddr - 1, s.vaddr + s.memsz]) pages.add(a - (a % PAGE));
          for (let i = 0; i < 64; i++) pages.add(Math.floor(((probe + 1) * 7919 * (i + 1)) % (memory / PAGE)) * PAGE);
          for (const addr of pages) {
            const want = expected(elf, layout, addr);
            const read = can(() => guest.read(addr, 1, "x"));
            const write = can(() => guest.check(addr, 1, "write", "x"));
            if (read !== (want === "ro" || want === "rw") || write !== (want === "rw")) return false;
            const leaf = nx(mem, addr);
            if (want === "ro" || want === "rw") {
              const code = segments.some((s) => s.exec && addr + PAGE > s.vaddr - (s.vaddr % PAGE) && addr < s.vaddr + s.memsz) || (addr >= layout.io.sites && addr < layout.io.readOnly);
              if (leaf !== !code) return false;
            }
          }
          return true;
        } finally {
          mem.close();
        }
      }),
      { numRuns: runs(100) },
    );
  });
});
